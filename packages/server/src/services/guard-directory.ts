import type { Enforcement, GuardRegistry, GuardStatus, ReceiptOutcome } from './guard-registry.ts';

/** The connected guards in one number and their largest lag, for metrics. */
export interface GuardOverview {
  readonly connected: number;
  readonly maxLag: { readonly entries: number; readonly ms: number };
}

/** The connected guards, and whose they are: `node` when only this process's could be counted. */
export interface GuardList {
  readonly scope: 'node' | 'cluster';
  readonly guards: GuardStatus[];
}

/**
 * Where guards are registered, listed and waited for: what the stream, receipt, admin and revocation handlers
 * and the metrics use. Two implementations, chosen by configuration (`runtime.ts`): {@link LocalGuardDirectory},
 * this process's guards (embedded mode), and `ClusterGuardDirectory`, every node's, shared through Redis (cluster
 * mode, `feed.redis`).
 */
export interface GuardDirectory {
  /** `node`: the guards of this process; `cluster`: the guards of every node. */
  readonly scope: 'node' | 'cluster';
  /**
   * Registers a stream of `guardId` opened on this process, resuming from `cursor`. Resolves the function to call
   * when the stream closes, or undefined when another client's guard holds this id.
   */
  open(guardId: string, clientId: string, cursor: number): Promise<(() => void) | undefined>;
  /** Records a receipt: the guard has applied every entry up to `cursor`. */
  receipt(guardId: string, clientId: string, cursor: number): Promise<ReceiptOutcome>;
  /**
   * Waits until every guard connected now has acknowledged a cursor ≥ `cursor`, or `timeoutMs` passes (0
   * answers at once). A guard that disconnects stays pending; one that connects later is not waited for.
   */
  waitForCursor(cursor: number, timeoutMs: number): Promise<Enforcement>;
  /**
   * The connected guards, sorted by id, with their lag behind this process. In cluster mode, while the shared
   * registry cannot be read, this process's guards with `scope: 'node'`.
   */
  list(): Promise<GuardList>;
  /** How many guards are connected, and the largest lag. */
  overview(): Promise<GuardOverview>;
  /** Ends every wait now, with the guards still pending (the server is shutting down). */
  releaseWaiters(): void;
  close(): Promise<void>;
}

/**
 * The guards of this process: those with a stream open on it ({@link GuardRegistry}, in memory). Receipts are
 * accepted only from them; a guard is listed while its stream is open.
 */
export class LocalGuardDirectory implements GuardDirectory {
  readonly scope = 'node';
  readonly #registry: GuardRegistry;

  constructor(registry: GuardRegistry) {
    this.#registry = registry;
  }

  async open(guardId: string, clientId: string, cursor: number): Promise<(() => void) | undefined> {
    return this.#registry.connect(guardId, clientId, cursor);
  }

  receipt(guardId: string, clientId: string, cursor: number): Promise<ReceiptOutcome> {
    return this.#registry.receipt(guardId, clientId, cursor);
  }

  waitForCursor(cursor: number, timeoutMs: number): Promise<Enforcement> {
    return this.#registry.waitForCursor(cursor, timeoutMs);
  }

  async list(): Promise<GuardList> {
    return { scope: 'node', guards: this.#registry.list() };
  }

  async overview(): Promise<GuardOverview> {
    return { connected: this.#registry.size, maxLag: this.#registry.maxLag() };
  }

  releaseWaiters(): void {
    this.#registry.releaseWaiters();
  }

  async close(): Promise<void> {
    this.#registry.releaseWaiters();
  }
}

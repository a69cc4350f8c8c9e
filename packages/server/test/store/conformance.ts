/**
 * The store conformance kit: the behaviour every {@link Store} implementation must show, exercised only through
 * the port. A backend's runner calls {@link storeConformance} once with a function that opens a fresh, empty
 * store on the real backend; the same kit runs unchanged against SQLite, PostgreSQL and any later store.
 *
 * Times are explicit arguments of the port, so the kit drives them from a fixed instant and needs no clock.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { describe, test } from 'node:test';
import type { AllowRule, LogEntry, Rule } from '@revokd/guard';
import type {
  AuditEvent,
  AuditEventType,
  ClientRecord,
  OpenSessionInput,
  RevocationEffect,
  RevocationRequest,
  RotateInput,
  RotateOutcome,
  SessionRecord,
  SigningKeyRecord,
  SigningKeyState,
  Store,
} from '../../src/store/port.ts';

export interface ConformanceOpenOptions {
  /** Passed to the backend's log listener: newly committed entries, in cursor order. */
  readonly onLogAppended?: ((entries: readonly LogEntry[]) => void) | undefined;
}

export interface ConformanceStore {
  /** A fresh, empty store. */
  readonly store: Store;
  /**
   * Opens the same database again (with the same options). The kit closes the store it holds before calling it.
   * Omit for a backend that keeps nothing across a close; the durability test is then skipped.
   */
  readonly reopen?: (() => Promise<Store>) | undefined;
  /** Closes whichever store (from open or reopen) is still open, and removes the database. */
  readonly cleanup: () => Promise<void>;
}

export type OpenConformanceStore = (options: ConformanceOpenOptions) => Promise<ConformanceStore>;

// --- local factories ---

const T0 = Date.UTC(2026, 0, 1);
const SECOND = 1000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const GRACE_MS = 30 * SECOND;
const IDLE_TTL_MS = 14 * DAY;

function makeClient(id: string, overrides: Partial<ClientRecord> = {}): ClientRecord {
  return {
    id,
    secretHash: `sha256:secret-of-${id}`,
    grants: ['client_credentials', 'refresh_token'],
    audiences: ['https://api.example.com'],
    scopes: ['read', 'write'],
    accessTokenTtlSeconds: 600,
    backchannelLogoutUri: `https://${id}.example.com/logout`,
    canIntrospect: false,
    sessionClaims: ['roles'],
    ...overrides,
  };
}

function makeKey(
  kid: string,
  state: SigningKeyState,
  createdAtMs: number,
  publishUntilMs?: number,
): SigningKeyRecord {
  return {
    kid,
    alg: 'EdDSA',
    privateJwk: { kty: 'OKP', crv: 'Ed25519', x: `x-${kid}`, d: `d-${kid}`, kid },
    publicJwk: { kty: 'OKP', crv: 'Ed25519', x: `x-${kid}`, kid },
    state,
    createdAtMs,
    publishUntilMs,
  };
}

function makeAudit(type: AuditEventType, fields: Partial<AuditEvent> = {}): AuditEvent {
  return { type, atMs: T0, actor: 'system', ...fields };
}

interface SessionOptions {
  readonly subject?: string;
  readonly clientId?: string;
  readonly claims?: Record<string, unknown>;
  readonly createdAtMs?: number;
  readonly absoluteExpiresAtMs?: number;
}

/** A session `sid` with family `fam-<sid>` and first refresh token `rt-<sid>`. */
function makeSession(sid: string, options: SessionOptions = {}): OpenSessionInput {
  const createdAtMs = options.createdAtMs ?? T0;
  const clientId = options.clientId ?? 'app';
  const subject = options.subject ?? 'alice';
  return {
    session: {
      sid,
      subject,
      clientId,
      scope: 'read write',
      audience: ['https://api.example.com'],
      claims: options.claims ?? {},
      createdAtMs,
      lastUsedAtMs: createdAtMs,
      absoluteExpiresAtMs: options.absoluteExpiresAtMs ?? createdAtMs + 90 * DAY,
    },
    familyId: `fam-${sid}`,
    refreshTokenHash: `rt-${sid}`,
    audit: [makeAudit('session_opened', { atMs: createdAtMs, actor: clientId, subject, clientId, sid })],
  };
}

const sessionRule = (sid: string, expiresAtMs = T0 + HOUR): Rule => ({ kind: 'session', sid, expiresAtMs });
const familyRule = (fid: string, expiresAtMs = T0 + HOUR): Rule => ({ kind: 'family', fid, expiresAtMs });
const tokenRule = (jti: string, expiresAtMs = T0 + HOUR): Rule => ({ kind: 'token', jti, expiresAtMs });

function makeRevocation(
  rules: readonly Rule[],
  overrides: Partial<RevocationRequest> = {},
): RevocationRequest {
  return { rules, effects: [], reason: 'test', nowMs: T0, audit: [], ...overrides };
}

/** The successor hash a caller derives from the presented token: the same for every presentation of it. */
const successorOf = (hash: string): string => `${hash}+`;

/** The audit event the kit's rotation callback records, naming the outcome in `detail`. */
function rotationAudit(outcome: RotateOutcome, nowMs: number): AuditEvent[] {
  const session = outcome.kind === 'rejected' ? undefined : outcome.session;
  return [
    makeAudit(outcome.kind === 'reuse' ? 'reuse_detected' : 'refreshed', {
      atMs: nowMs,
      actor: 'app',
      subject: session?.subject,
      clientId: 'app',
      sid: session?.sid,
      detail: { outcome: outcome.kind, ...(outcome.kind === 'rejected' ? { reason: outcome.reason } : {}) },
    }),
  ];
}

interface RotateOptions {
  readonly nowMs?: number;
  readonly clientId?: string;
  readonly graceMs?: number;
  readonly idleTtlMs?: number;
  readonly audit?: RotateInput['audit'];
}

function makeRotate(presentedHash: string, options: RotateOptions = {}): RotateInput {
  const nowMs = options.nowMs ?? T0 + SECOND;
  return {
    presentedHash,
    successorHash: successorOf(presentedHash),
    clientId: options.clientId ?? 'app',
    nowMs,
    policy: { graceMs: options.graceMs ?? GRACE_MS, idleTtlMs: options.idleTtlMs ?? IDLE_TTL_MS },
    reuseRules: ({ sid, fid }) => [familyRule(fid, nowMs + HOUR), sessionRule(sid, nowMs + HOUR)],
    audit: options.audit ?? ((outcome) => rotationAudit(outcome, nowMs)),
  };
}

/** Drops keys whose value is undefined, so an absent optional field and an explicit undefined compare equal. */
function defined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const byKid = (a: SigningKeyRecord, b: SigningKeyRecord) => a.kid.localeCompare(b.kid);

function assertIncreasing(entries: readonly LogEntry[]): void {
  for (let i = 1; i < entries.length; i++) {
    assert.ok(
      entries[i]!.cursor > entries[i - 1]!.cursor,
      `cursor ${entries[i]!.cursor} follows ${entries[i - 1]!.cursor}`,
    );
  }
}

async function readWholeLog(store: Store): Promise<LogEntry[]> {
  return store.readLog(0, 10_000);
}

async function auditOf(store: Store, filter: { sid?: string; type?: AuditEventType } = {}) {
  return store.readAudit({ ...filter, limit: 1000 });
}

// --- the kit ---

export function storeConformance(name: string, open: OpenConformanceStore): void {
  /** Opens a fresh store for one test and removes it when the test ends; records what the log listener sees. */
  async function setup(t: TestContext) {
    const announced: LogEntry[][] = [];
    const handle = await open({ onLogAppended: (entries) => announced.push([...entries]) });
    t.after(() => handle.cleanup());
    const announcedEntries = () => announced.flat();
    return { ...handle, announced, announcedEntries };
  }

  describe(`Store conformance: ${name}`, () => {
    describe('clients', () => {
      test('saveClient creates a client and getClient and listClients return it', async (t) => {
        const { store } = await setup(t);
        assert.deepEqual(await store.listClients(), []);
        const app = makeClient('app');
        const api = makeClient('api', { canIntrospect: true, accessTokenTtlSeconds: undefined });
        await store.saveClient(app);
        await store.saveClient(api);
        assert.deepEqual(defined((await store.getClient('app'))!), defined(app));
        const listed = (await store.listClients()).map(defined).sort((a, b) => a.id!.localeCompare(b.id!));
        assert.deepEqual(listed, [defined(api), defined(app)]);
      });

      test('saveClient replaces every field of an existing client', async (t) => {
        const { store } = await setup(t);
        await store.saveClient(makeClient('app'));
        const replaced = makeClient('app', {
          secretHash: 'sha256:rotated',
          grants: ['urn:ietf:params:oauth:grant-type:token-exchange'],
          audiences: ['https://other.example.com'],
          scopes: ['admin'],
          accessTokenTtlSeconds: undefined,
          backchannelLogoutUri: undefined,
          canIntrospect: true,
          sessionClaims: [],
        });
        await store.saveClient(replaced);
        assert.deepEqual(defined((await store.getClient('app'))!), defined(replaced));
        assert.equal((await store.listClients()).length, 1);
      });

      test('deleteClient removes a client and returns false when there is none', async (t) => {
        const { store } = await setup(t);
        await store.saveClient(makeClient('app'));
        await store.saveClient(makeClient('other'));
        assert.equal(await store.deleteClient('app'), true);
        assert.equal(await store.getClient('app'), undefined);
        assert.equal(await store.deleteClient('app'), false);
        assert.equal(await store.deleteClient('never-existed'), false);
        assert.deepEqual(
          (await store.listClients()).map((c) => c.id),
          ['other'],
        );
      });
    });

    describe('signing keys and secrets', () => {
      test('saveSigningKeys stores the keys and their audit events', async (t) => {
        const { store } = await setup(t);
        const key = makeKey('k1', 'active', T0);
        await store.saveSigningKeys(
          [key],
          [makeAudit('key_created', { actor: 'cli', detail: { kid: 'k1' } })],
        );
        assert.deepEqual((await store.listSigningKeys()).map(defined), [defined(key)]);
        const events = await auditOf(store, { type: 'key_created' });
        assert.deepEqual(
          events.map((e) => e.detail),
          [{ kid: 'k1' }],
        );
      });

      test('a rotation demotes and promotes in one call, whatever the order of the keys', async (t) => {
        const { store } = await setup(t);
        await store.saveSigningKeys([makeKey('k1', 'active', T0)], []);
        // The new active key comes first: the store must still never hold two active keys.
        await store.saveSigningKeys(
          [makeKey('k2', 'active', T0 + DAY), makeKey('k1', 'retired', T0, T0 + 2 * DAY)],
          [makeAudit('key_rotated', { actor: 'cli' })],
        );
        const keys = (await store.listSigningKeys()).sort(byKid);
        assert.deepEqual(
          keys.map((k) => [k.kid, k.state, k.publishUntilMs]),
          [
            ['k1', 'retired', T0 + 2 * DAY],
            ['k2', 'active', undefined],
          ],
        );
        await store.saveSigningKeys(
          [makeKey('k1', 'revoked', T0)],
          [makeAudit('key_revoked', { actor: 'cli' })],
        );
        const after = (await store.listSigningKeys()).sort(byKid);
        assert.deepEqual(
          after.map((k) => [k.kid, k.state]),
          [
            ['k1', 'revoked'],
            ['k2', 'active'],
          ],
        );
        assert.deepEqual(after[1]!.privateJwk, makeKey('k2', 'active', 0).privateJwk);
        assert.equal((await auditOf(store)).length, 2);
      });

      test('a second active key is refused and nothing of that call is written', async (t) => {
        const { store } = await setup(t);
        await store.saveSigningKeys([makeKey('k1', 'active', T0)], []);
        await assert.rejects(
          store.saveSigningKeys(
            [makeKey('k2', 'active', T0 + 1), makeKey('k3', 'retired', T0 + 2, T0 + DAY)],
            [makeAudit('key_created', { actor: 'cli' })],
          ),
        );
        assert.deepEqual(
          (await store.listSigningKeys()).map((k) => [k.kid, k.state]),
          [['k1', 'active']],
        );
        assert.deepEqual(await auditOf(store), []);
      });

      test('getOrCreateSecret: concurrent first calls agree on one value; later calls do not create', async (t) => {
        const { store } = await setup(t);
        let created = 0;
        const values = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            store.getOrCreateSecret('rotation-key', () => {
              created++;
              return `value-${i}`;
            }),
          ),
        );
        assert.ok(created >= 1);
        assert.equal(new Set(values).size, 1, `one value, got ${[...new Set(values)].join(', ')}`);
        assert.match(values[0]!, /^value-\d+$/);
        const later = await store.getOrCreateSecret('rotation-key', () => assert.fail('create called again'));
        assert.equal(later, values[0]);
        assert.equal(await store.getOrCreateSecret('other', () => 'other-value'), 'other-value');
      });
    });

    describe('sessions', () => {
      test('openSession opens the session with its first family and refresh token, and records the audit', async (t) => {
        const { store } = await setup(t);
        const input = makeSession('s1', { claims: { roles: ['admin'], dept: 'ops' } });
        assert.deepEqual(await store.openSession(input), { kind: 'opened' });
        const expected: SessionRecord = { ...input.session, endedAtMs: undefined, endReason: undefined };
        assert.deepEqual(defined((await store.getSession('s1'))!), defined(expected));
        const view = await store.findRefreshToken('rt-s1');
        assert.ok(view);
        assert.deepEqual(defined(view.session), defined(expected));
        assert.deepEqual(
          { fid: view.fid, issuedAtMs: view.issuedAtMs, rotated: view.rotated },
          { fid: 'fam-s1', issuedAtMs: T0, rotated: false },
        );
        assert.equal(view.familyRevoked, false);
        assert.equal(view.subjectSuspended, false);
        assert.deepEqual(
          (await auditOf(store, { sid: 's1' })).map((e) => e.type),
          ['session_opened'],
        );
        assert.equal(await store.getSession('nope'), undefined);
        assert.equal(await store.findRefreshToken('nope'), undefined);
      });

      test('openSession for a suspended subject answers suspended and writes nothing', async (t) => {
        const { store } = await setup(t);
        await store.revoke(makeRevocation([], { effects: [{ kind: 'suspend-subject', subject: 'alice' }] }));
        assert.equal(await store.isSubjectSuspended('alice'), true);
        assert.deepEqual(await store.openSession(makeSession('s1', { subject: 'alice' })), {
          kind: 'suspended',
        });
        assert.equal(await store.getSession('s1'), undefined);
        assert.equal(await store.findRefreshToken('rt-s1'), undefined);
        assert.deepEqual(await store.listSessions('alice', { includeEnded: true, nowMs: T0 }), []);
        assert.deepEqual(await auditOf(store, { type: 'session_opened' }), []);
        // Another subject is unaffected.
        assert.deepEqual(await store.openSession(makeSession('s2', { subject: 'bob' })), { kind: 'opened' });
      });

      test('reinstateSubject clears a suspension once, with its audit event', async (t) => {
        const { store } = await setup(t);
        const reinstated = makeAudit('reinstated', { actor: 'cli', subject: 'alice' });
        assert.equal(await store.reinstateSubject('alice', reinstated), false);
        await store.revoke(makeRevocation([], { effects: [{ kind: 'suspend-subject', subject: 'alice' }] }));
        assert.equal(await store.reinstateSubject('alice', reinstated), true);
        assert.equal(await store.isSubjectSuspended('alice'), false);
        assert.equal(await store.reinstateSubject('alice', reinstated), false);
        assert.deepEqual(
          (await auditOf(store, { type: 'reinstated' })).map((e) => e.subject),
          ['alice'],
        );
        assert.deepEqual(await store.openSession(makeSession('s1', { subject: 'alice' })), {
          kind: 'opened',
        });
      });

      test('listSessions returns live sessions of one subject, and ended or expired ones with includeEnded', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('live', { subject: 'alice' }));
        await store.openSession(makeSession('ended', { subject: 'alice', createdAtMs: T0 + 1 }));
        await store.openSession(
          makeSession('expired', { subject: 'alice', createdAtMs: T0 + 2, absoluteExpiresAtMs: T0 + HOUR }),
        );
        await store.openSession(makeSession('bobs', { subject: 'bob' }));
        await store.revoke(
          makeRevocation([sessionRule('ended')], { effects: [{ kind: 'end-session', sid: 'ended' }] }),
        );
        const now = T0 + 2 * HOUR;
        const live = await store.listSessions('alice', { includeEnded: false, nowMs: now });
        assert.deepEqual(
          live.map((s) => s.sid),
          ['live'],
        );
        const all = await store.listSessions('alice', { includeEnded: true, nowMs: now });
        assert.deepEqual(all.map((s) => s.sid).sort(), ['ended', 'expired', 'live']);
        assert.equal(all.find((s) => s.sid === 'ended')?.endedAtMs, T0);
        assert.deepEqual(await store.listSessions('nobody', { includeEnded: true, nowMs: now }), []);
      });

      test('findRefreshToken reports a revoked family and a suspended subject', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('s1', { subject: 'alice' }));
        await store.openSession(makeSession('s2', { subject: 'bob' }));
        await store.revoke(
          makeRevocation([familyRule('fam-s1')], {
            effects: [
              { kind: 'end-family', fid: 'fam-s1' },
              { kind: 'suspend-subject', subject: 'bob' },
            ],
          }),
        );
        const one = await store.findRefreshToken('rt-s1');
        assert.equal(one?.familyRevoked, true);
        assert.equal(one?.subjectSuspended, false);
        assert.equal(one?.session.endedAtMs, undefined);
        const two = await store.findRefreshToken('rt-s2');
        assert.equal(two?.familyRevoked, false);
        assert.equal(two?.subjectSuspended, true);
      });
    });

    describe('rotateRefreshToken', () => {
      test('rotates the family head: the presented token is spent and the successor becomes the head', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('s1'));
        const now = T0 + 10 * SECOND;
        const outcome = await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: now }));
        assert.equal(outcome.kind, 'rotated');
        assert.equal(outcome.fid, 'fam-s1');
        assert.equal(outcome.session.sid, 's1');
        assert.equal(outcome.session.lastUsedAtMs, now);
        assert.equal((await store.getSession('s1'))?.lastUsedAtMs, now);
        assert.equal((await store.findRefreshToken('rt-s1'))?.rotated, true);
        const successor = await store.findRefreshToken(successorOf('rt-s1'));
        assert.deepEqual([successor?.fid, successor?.issuedAtMs, successor?.rotated], ['fam-s1', now, false]);
        // The chain goes on from the new head.
        const next = await store.rotateRefreshToken(makeRotate(successorOf('rt-s1'), { nowMs: now + HOUR }));
        assert.equal(next.kind, 'rotated');
      });

      test('the parent presented again within the grace period is replayed: same family, no fork', async (t) => {
        const { store, announced } = await setup(t);
        await store.openSession(makeSession('s1'));
        await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: T0 + SECOND }));
        const replay = await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: T0 + SECOND + GRACE_MS }));
        assert.equal(replay.kind, 'replayed');
        assert.equal(replay.fid, 'fam-s1');
        assert.equal(replay.session.sid, 's1');
        assert.equal(replay.session.endedAtMs, undefined);
        assert.equal((await store.findRefreshToken(successorOf('rt-s1')))?.rotated, false);
        assert.equal(await store.findRefreshToken(successorOf(successorOf('rt-s1'))), undefined);
        assert.deepEqual(await readWholeLog(store), []);
        assert.deepEqual(announced, []);
        // One chain survives: its head still rotates.
        const next = await store.rotateRefreshToken(
          makeRotate(successorOf('rt-s1'), { nowMs: T0 + 2 * GRACE_MS }),
        );
        assert.equal(next.kind, 'rotated');
      });

      test('a rotated token presented after the grace period is reuse: family and session end, rules appended and announced', async (t) => {
        const { store, announced } = await setup(t);
        await store.openSession(makeSession('s1'));
        await store.openSession(makeSession('s2'));
        await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: T0 + SECOND }));
        const now = T0 + SECOND + GRACE_MS + 1;
        const outcome = await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: now }));
        assert.equal(outcome.kind, 'reuse');
        assert.equal(outcome.fid, 'fam-s1');
        assert.equal(outcome.session.sid, 's1');
        assert.deepEqual(
          outcome.entries.map((e) => e.rule),
          [familyRule('fam-s1', now + HOUR), sessionRule('s1', now + HOUR)],
        );
        assertIncreasing(outcome.entries);
        assert.deepEqual(await readWholeLog(store), outcome.entries);
        assert.deepEqual(announced, [outcome.entries]);
        const successor = await store.findRefreshToken(successorOf('rt-s1'));
        assert.equal(successor?.familyRevoked, true);
        assert.equal(successor?.session.endedAtMs, now);
        assert.equal((await store.getSession('s1'))?.endedAtMs, now);
        assert.equal((await store.getSession('s2'))?.endedAtMs, undefined);
        const snapshot = await store.snapshot(now);
        assert.deepEqual(
          snapshot.rules,
          outcome.entries.map((e) => e.rule),
        );
        assert.equal(snapshot.cursor, outcome.entries.at(-1)!.cursor);
        // The thief's successor is dead too.
        assert.deepEqual(
          await store.rotateRefreshToken(makeRotate(successorOf('rt-s1'), { nowMs: now + 1 })),
          {
            kind: 'rejected',
            reason: 'revoked',
          },
        );
      });

      test('a token older than the parent is reuse even within the grace period', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('s1'));
        await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: T0 + SECOND }));
        await store.rotateRefreshToken(makeRotate(successorOf('rt-s1'), { nowMs: T0 + 2 * SECOND }));
        const outcome = await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: T0 + 3 * SECOND }));
        assert.equal(outcome.kind, 'reuse');
        assert.equal((await store.getSession('s1'))?.endedAtMs, T0 + 3 * SECOND);
      });

      test('with grace 0 a rotated token presented again at once is reuse', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('s1'));
        await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: T0 + SECOND, graceMs: 0 }));
        const outcome = await store.rotateRefreshToken(
          makeRotate('rt-s1', { nowMs: T0 + SECOND, graceMs: 0 }),
        );
        assert.equal(outcome.kind, 'reuse');
      });

      const rejections: ReadonlyArray<{
        readonly reason: string;
        readonly before?: (store: Store) => Promise<unknown>;
        readonly rotate: RotateOptions;
      }> = [
        { reason: 'client_mismatch', rotate: { clientId: 'someone-else' } },
        {
          reason: 'revoked',
          before: (store) =>
            store.revoke(makeRevocation([], { effects: [{ kind: 'end-session', sid: 's1' }] })),
          rotate: {},
        },
        {
          reason: 'revoked',
          before: (store) =>
            store.revoke(makeRevocation([], { effects: [{ kind: 'end-family', fid: 'fam-s1' }] })),
          rotate: {},
        },
        {
          reason: 'suspended',
          before: (store) =>
            store.revoke(makeRevocation([], { effects: [{ kind: 'suspend-subject', subject: 'alice' }] })),
          rotate: {},
        },
        { reason: 'session_expired', rotate: { nowMs: T0 + 90 * DAY } },
        { reason: 'idle_expired', rotate: { nowMs: T0 + IDLE_TTL_MS } },
      ];
      for (const [i, row] of rejections.entries()) {
        test(`rejects with ${row.reason} (case ${i + 1}) and changes nothing but the audit`, async (t) => {
          const { store, announced } = await setup(t);
          await store.openSession(makeSession('s1', { subject: 'alice' }));
          await row.before?.(store);
          const before = await store.findRefreshToken('rt-s1');
          const logBefore = await readWholeLog(store);
          const announcedBefore = announced.length;
          const input = makeRotate('rt-s1', row.rotate);
          assert.deepEqual(await store.rotateRefreshToken(input), { kind: 'rejected', reason: row.reason });
          assert.deepEqual(await store.findRefreshToken('rt-s1'), before);
          assert.equal(await store.findRefreshToken(input.successorHash), undefined);
          assert.deepEqual(await readWholeLog(store), logBefore);
          assert.equal(announced.length, announcedBefore);
          const events = await auditOf(store, { type: 'refreshed' });
          assert.deepEqual(
            events.map((e) => e.detail),
            [{ outcome: 'rejected', reason: row.reason }],
          );
        });
      }

      test('a client mismatch leaves the token usable by its own client', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('s1'));
        await store.rotateRefreshToken(makeRotate('rt-s1', { clientId: 'someone-else' }));
        assert.equal((await store.rotateRefreshToken(makeRotate('rt-s1'))).kind, 'rotated');
      });

      test('an unknown token is rejected as unknown', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('s1'));
        assert.deepEqual(await store.rotateRefreshToken(makeRotate('no-such-token')), {
          kind: 'rejected',
          reason: 'unknown',
        });
        assert.equal(await store.findRefreshToken(successorOf('no-such-token')), undefined);
      });

      test('the audit callback sees each outcome and its events are stored with it', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('s1'));
        const seen: string[] = [];
        const recording =
          (nowMs: number): RotateInput['audit'] =>
          (outcome) => {
            seen.push(outcome.kind);
            return rotationAudit(outcome, nowMs);
          };
        const at = (ms: number) => ({ nowMs: ms, audit: recording(ms) });
        await store.rotateRefreshToken(makeRotate('rt-s1', at(T0 + SECOND)));
        await store.rotateRefreshToken(makeRotate('rt-s1', at(T0 + 2 * SECOND)));
        await store.rotateRefreshToken(makeRotate('rt-s1', at(T0 + HOUR)));
        await store.rotateRefreshToken(makeRotate('unknown', at(T0 + HOUR)));
        assert.deepEqual(seen, ['rotated', 'replayed', 'reuse', 'rejected']);
        const events = await store.readAudit({ clientId: 'app', limit: 100 });
        assert.deepEqual(
          events.filter((e) => e.type !== 'session_opened').map((e) => [e.type, e.atMs, e.sid, e.detail]),
          [
            ['refreshed', T0 + SECOND, 's1', { outcome: 'rotated' }],
            ['refreshed', T0 + 2 * SECOND, 's1', { outcome: 'replayed' }],
            ['reuse_detected', T0 + HOUR, 's1', { outcome: 'reuse' }],
            ['refreshed', T0 + HOUR, undefined, { outcome: 'rejected', reason: 'unknown' }],
          ],
        );
      });

      test('an audit callback that throws rolls the rotation back', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('s1'));
        const failing = makeRotate('rt-s1', {
          audit: () => {
            throw new Error('audit failed');
          },
        });
        await assert.rejects(store.rotateRefreshToken(failing), /audit failed/);
        assert.equal((await store.findRefreshToken('rt-s1'))?.rotated, false);
        assert.equal(await store.findRefreshToken(failing.successorHash), undefined);
        assert.equal((await store.getSession('s1'))?.lastUsedAtMs, T0);
        assert.equal((await store.rotateRefreshToken(makeRotate('rt-s1'))).kind, 'rotated');
      });

      test('an audit callback that throws on reuse rolls back the rules and effects and announces nothing', async (t) => {
        const { store, announced } = await setup(t);
        await store.openSession(makeSession('s1'));
        await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: T0 + SECOND }));
        const failing = makeRotate('rt-s1', {
          nowMs: T0 + HOUR,
          audit: (outcome) => {
            if (outcome.kind === 'reuse') throw new Error('audit failed');
            return [];
          },
        });
        // A write of the same batch commits: the failed one must not ride along with it.
        const [reuse, other] = await Promise.allSettled([
          store.rotateRefreshToken(failing),
          store.revoke(makeRevocation([tokenRule('jti-1')])),
        ]);
        assert.equal(reuse.status, 'rejected');
        assert.equal(other.status, 'fulfilled');
        const committed = other.status === 'fulfilled' ? other.value : [];
        assert.deepEqual(await readWholeLog(store), committed);
        assert.deepEqual(announced.flat(), committed);
        assert.equal((await store.getSession('s1'))?.endedAtMs, undefined);
        assert.equal((await store.findRefreshToken(successorOf('rt-s1')))?.familyRevoked, false);
        assert.deepEqual(await auditOf(store, { type: 'reuse_detected' }), []);
        // The next entry takes the next position: no announced cursor is ever reused.
        const [next] = await store.revoke(makeRevocation([tokenRule('jti-2')]));
        assert.ok(next!.cursor > committed[0]!.cursor);
        assert.deepEqual(announced.flat(), await readWholeLog(store));
      });

      test('50 concurrent rotations of one token within the grace period: one rotated, 49 replayed, one successor', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('s1'));
        const now = T0 + SECOND;
        const outcomes = await Promise.all(
          Array.from({ length: 50 }, () => store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: now }))),
        );
        const kinds = outcomes.map((o) => o.kind);
        assert.equal(kinds.filter((k) => k === 'rotated').length, 1);
        assert.equal(kinds.filter((k) => k === 'replayed').length, 49);
        for (const o of outcomes) {
          assert.ok(o.kind === 'rotated' || o.kind === 'replayed');
          assert.equal(o.fid, 'fam-s1');
          assert.equal(o.session.sid, 's1');
        }
        // Every caller derived the same successor, and it is the one surviving head.
        const successor = await store.findRefreshToken(successorOf('rt-s1'));
        assert.deepEqual(
          [successor?.fid, successor?.rotated, successor?.familyRevoked],
          ['fam-s1', false, false],
        );
        assert.equal(await store.findRefreshToken(successorOf(successorOf('rt-s1'))), undefined);
        assert.deepEqual(await readWholeLog(store), []);
        assert.equal(
          (await store.rotateRefreshToken(makeRotate(successorOf('rt-s1'), { nowMs: now + 1 }))).kind,
          'rotated',
        );
      });

      test('50 concurrent rotations of one token with grace 0: one rotated, the others count as reuse', async (t) => {
        const { store, announced } = await setup(t);
        await store.openSession(makeSession('s1'));
        const now = T0 + SECOND;
        const outcomes = await Promise.all(
          Array.from({ length: 50 }, () =>
            store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: now, graceMs: 0 })),
          ),
        );
        const kinds = outcomes.map((o) => o.kind);
        assert.equal(kinds.filter((k) => k === 'rotated').length, 1);
        assert.equal(kinds.filter((k) => k === 'replayed').length, 0);
        const reuses = outcomes.filter((o) => o.kind === 'reuse');
        assert.ok(reuses.length >= 1);
        // Once reuse has revoked the family, a later presentation is refused as revoked: still no token.
        for (const o of outcomes) {
          if (o.kind === 'rejected') assert.equal(o.reason, 'revoked');
        }
        assert.equal((await store.getSession('s1'))?.endedAtMs, now);
        assert.equal((await store.findRefreshToken(successorOf('rt-s1')))?.familyRevoked, true);
        const appended = reuses.flatMap((o) => o.entries);
        assert.deepEqual(await readWholeLog(store), appended);
        assert.deepEqual(announced.flat(), appended);
      });
    });

    describe('allow entries (allowlist mode)', () => {
      const allowRule = (jti: string): AllowRule => ({ kind: 'allow', jti, expiresAtMs: T0 + HOUR });

      test('openSession appends its allow entry in the same write, and none for a suspended subject', async (t) => {
        const { store, announced } = await setup(t);
        const outcome = await store.openSession({ ...makeSession('s1'), allow: allowRule('j1') });
        assert.equal(outcome.kind, 'opened');
        const allowed = outcome.kind === 'opened' ? outcome.allowed : undefined;
        assert.deepEqual(allowed?.rule, allowRule('j1'));
        assert.deepEqual(await readWholeLog(store), [allowed]);
        assert.deepEqual(announced.flat(), [allowed]);
        assert.deepEqual((await store.snapshot(T0)).rules, [allowRule('j1')]);

        await store.revoke(makeRevocation([], { effects: [{ kind: 'suspend-subject', subject: 'bob' }] }));
        const refused = await store.openSession({
          ...makeSession('s2', { subject: 'bob' }),
          allow: allowRule('j2'),
        });
        assert.deepEqual(refused, { kind: 'suspended' });
        assert.deepEqual(await readWholeLog(store), [allowed]);
      });

      test('a rotation appends its allow entry when rotated or replayed, never on reuse or rejection', async (t) => {
        const { store, announced } = await setup(t);
        await store.openSession(makeSession('s1'));
        const rotated = await store.rotateRefreshToken({
          ...makeRotate('rt-s1', { nowMs: T0 + SECOND }),
          allow: allowRule('r1'),
        });
        const replayed = await store.rotateRefreshToken({
          ...makeRotate('rt-s1', { nowMs: T0 + SECOND + GRACE_MS }),
          allow: allowRule('r2'),
        });
        assert.equal(rotated.kind, 'rotated');
        assert.equal(replayed.kind, 'replayed');
        const entries = [rotated, replayed].map((o) => ('allowed' in o ? o.allowed : undefined));
        assert.deepEqual(
          entries.map((e) => e?.rule),
          [allowRule('r1'), allowRule('r2')],
        );
        assert.deepEqual(await readWholeLog(store), entries);
        assert.deepEqual(announced.flat(), entries);

        const rejected = await store.rotateRefreshToken({ ...makeRotate('unknown'), allow: allowRule('r3') });
        assert.equal(rejected.kind, 'rejected');
        const reuse = await store.rotateRefreshToken({
          ...makeRotate('rt-s1', { nowMs: T0 + HOUR }),
          allow: allowRule('r4'),
        });
        assert.equal(reuse.kind, 'reuse');
        const log = await readWholeLog(store);
        assert.deepEqual(
          log.map((e) => e.rule.kind),
          ['allow', 'allow', 'family', 'session'],
        );
      });

      test('an allow entry is rolled back with a rotation whose audit callback throws', async (t) => {
        const { store, announced } = await setup(t);
        await store.openSession(makeSession('s1'));
        const failing = makeRotate('rt-s1', {
          audit: () => {
            throw new Error('audit failed');
          },
        });
        await assert.rejects(
          store.rotateRefreshToken({ ...failing, allow: allowRule('r1') }),
          /audit failed/,
        );
        assert.deepEqual(await readWholeLog(store), []);
        assert.deepEqual(announced, []);
      });

      test('revoke with no effects appends an allow entry (client credentials), pruned at its expiry', async (t) => {
        const { store } = await setup(t);
        const [entry] = await store.revoke(makeRevocation([allowRule('c1')], { reason: 'issued' }));
        assert.deepEqual(entry?.rule, allowRule('c1'));
        assert.equal(await store.prune(T0 + HOUR - 1), 0);
        assert.equal(await store.prune(T0 + HOUR), 1);
        assert.deepEqual((await store.snapshot(T0)).rules, []);
      });
    });

    describe('revoke', () => {
      test('rules get strictly increasing cursors within a call, across calls and across batches', async (t) => {
        const { store } = await setup(t);
        const first = await store.revoke(makeRevocation([tokenRule('a'), tokenRule('b'), tokenRule('c')]));
        const sameTick = await Promise.all([
          store.revoke(makeRevocation([tokenRule('d')])),
          store.revoke(makeRevocation([tokenRule('e'), tokenRule('f')])),
        ]);
        const later = await store.revoke(makeRevocation([tokenRule('g')]));
        assert.deepEqual(
          first.map((e) => e.rule),
          [tokenRule('a'), tokenRule('b'), tokenRule('c')],
        );
        const all = [...first, ...sameTick.flat(), ...later];
        assertIncreasing(all);
        assert.deepEqual(await readWholeLog(store), all);
      });

      // Sessions of the effect table: [sid, subject, client, claims].
      const WORLD: ReadonlyArray<readonly [string, string, string, Record<string, unknown>]> = [
        ['a1', 'alice', 'app', { roles: ['admin', 'dev'] }],
        ['a2', 'alice', 'web', { roles: 'dev' }],
        ['b1', 'bob', 'app', { roles: 'admin' }],
        ['c1', 'carol', 'web', { roles: ['dev'], team: 'admin' }],
        ['d1', 'dave', 'app', {}],
      ];
      const effectCases: ReadonlyArray<{
        readonly effect: RevocationEffect;
        readonly endedSessions: readonly string[];
        readonly revokedFamilies?: readonly string[];
        readonly suspended?: readonly string[];
      }> = [
        { effect: { kind: 'end-session', sid: 'a1' }, endedSessions: ['a1'] },
        { effect: { kind: 'end-family', fid: 'fam-a2' }, endedSessions: [], revokedFamilies: ['fam-a2'] },
        { effect: { kind: 'end-subject-sessions', subject: 'alice' }, endedSessions: ['a1', 'a2'] },
        { effect: { kind: 'end-client-sessions', clientId: 'web' }, endedSessions: ['a2', 'c1'] },
        {
          effect: { kind: 'end-claim-sessions', claim: 'roles', value: 'admin' },
          endedSessions: ['a1', 'b1'],
        },
        {
          effect: { kind: 'end-claim-sessions', claim: 'roles', value: 'dev' },
          endedSessions: ['a1', 'a2', 'c1'],
        },
        { effect: { kind: 'end-claim-sessions', claim: 'roles', value: 'nobody' }, endedSessions: [] },
        { effect: { kind: 'end-all-sessions' }, endedSessions: ['a1', 'a2', 'b1', 'c1', 'd1'] },
        { effect: { kind: 'suspend-subject', subject: 'bob' }, endedSessions: [], suspended: ['bob'] },
      ];
      for (const row of effectCases) {
        test(`effect ${JSON.stringify(row.effect)} changes exactly what it should`, async (t) => {
          const { store } = await setup(t);
          for (const [sid, subject, clientId, claims] of WORLD) {
            await store.openSession(makeSession(sid, { subject, clientId, claims }));
          }
          const now = T0 + HOUR;
          const entries = await store.revoke(
            makeRevocation([sessionRule('x', now + HOUR)], {
              effects: [row.effect],
              reason: 'effect-test',
              nowMs: now,
              audit: [makeAudit('revoked', { atMs: now, actor: 'admin:ops', reason: 'effect-test' })],
            }),
          );
          assert.equal(entries.length, 1);
          for (const [sid, subject] of WORLD) {
            const session = (await store.getSession(sid))!;
            const ended = row.endedSessions.includes(sid);
            assert.equal(session.endedAtMs, ended ? now : undefined, `${sid} ended at`);
            assert.equal(session.endReason, ended ? 'effect-test' : undefined, `${sid} end reason`);
            const view = (await store.findRefreshToken(`rt-${sid}`))!;
            assert.equal(
              view.familyRevoked,
              (row.revokedFamilies ?? []).includes(`fam-${sid}`),
              `${sid} family`,
            );
            const suspended = (row.suspended ?? []).includes(subject);
            assert.equal(await store.isSubjectSuspended(subject), suspended, `${subject} suspended`);
            assert.equal(view.subjectSuspended, suspended);
          }
          assert.deepEqual(
            (await auditOf(store, { type: 'revoked' })).map((e) => [e.actor, e.reason, e.atMs]),
            [['admin:ops', 'effect-test', now]],
          );
        });
      }

      test('ending an already ended session keeps its first end', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('s1'));
        await store.revoke(
          makeRevocation([], { effects: [{ kind: 'end-session', sid: 's1' }], reason: 'logout' }),
        );
        await store.revoke(
          makeRevocation([], { effects: [{ kind: 'end-all-sessions' }], reason: 'global', nowMs: T0 + DAY }),
        );
        const session = await store.getSession('s1');
        assert.deepEqual([session?.endedAtMs, session?.endReason], [T0, 'logout']);
      });

      test('a revocation whose audit cannot be stored writes nothing and announces nothing', async (t) => {
        const { store, announced } = await setup(t);
        await store.openSession(makeSession('s1'));
        // A bigint cannot be serialised: the store fails inside the write, after the rules and effects.
        const bad = makeAudit('revoked', { detail: { n: 1n } });
        await assert.rejects(
          store.revoke(
            makeRevocation([sessionRule('s1')], {
              effects: [
                { kind: 'end-session', sid: 's1' },
                { kind: 'suspend-subject', subject: 'alice' },
              ],
              audit: [makeAudit('revoked'), bad],
            }),
          ),
        );
        assert.deepEqual(await readWholeLog(store), []);
        assert.deepEqual(announced, []);
        assert.equal((await store.getSession('s1'))?.endedAtMs, undefined);
        assert.equal(await store.isSubjectSuspended('alice'), false);
        assert.deepEqual(await auditOf(store, { type: 'revoked' }), []);
      });

      test('the log listener gets committed entries in cursor order, before revoke resolves, never a failed write', async (t) => {
        const { store, announced, announcedEntries } = await setup(t);
        await store.openSession(makeSession('s1'));
        const first = await store.revoke(makeRevocation([tokenRule('a')]));
        assert.deepEqual(announcedEntries(), first, 'announced before the caller is answered');
        const results = await Promise.allSettled([
          store.revoke(makeRevocation([tokenRule('b'), tokenRule('c')])),
          store.revoke(
            makeRevocation([tokenRule('bad')], { audit: [makeAudit('revoked', { detail: { n: 1n } })] }),
          ),
          store.revoke(makeRevocation([tokenRule('d')])).then((entries) => {
            assert.ok(announcedEntries().some((e) => e.cursor === entries[0]!.cursor));
            return entries;
          }),
        ]);
        assert.deepEqual(
          results.map((r) => r.status),
          ['fulfilled', 'rejected', 'fulfilled'],
        );
        const log = await readWholeLog(store);
        assert.deepEqual(
          log.map((e) => (e.rule.kind === 'token' ? e.rule.jti : '?')),
          ['a', 'b', 'c', 'd'],
        );
        assert.deepEqual(announcedEntries(), log);
        assertIncreasing(announcedEntries());
        assert.ok(announced.every((batch) => batch.length > 0));
      });

      test('readLog pages through the log after a cursor', async (t) => {
        const { store } = await setup(t);
        assert.deepEqual(await store.readLog(0, 10), []);
        const entries: LogEntry[] = [];
        for (const jti of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) {
          entries.push(...(await store.revoke(makeRevocation([tokenRule(jti)]))));
        }
        const pages: LogEntry[][] = [];
        let cursor = 0;
        for (;;) {
          const page = await store.readLog(cursor, 3);
          if (page.length === 0) break;
          assert.ok(page.length <= 3);
          pages.push(page);
          cursor = page.at(-1)!.cursor;
        }
        assert.deepEqual(
          pages.map((p) => p.length),
          [3, 3, 1],
        );
        assert.deepEqual(pages.flat(), entries);
        assert.deepEqual(await store.readLog(entries[4]!.cursor, 100), entries.slice(5));
        assert.deepEqual(await store.readLog(entries.at(-1)!.cursor, 100), []);
      });

      test('snapshot holds only unexpired rules and the cursor of the last entry', async (t) => {
        const { store } = await setup(t);
        const empty = await store.snapshot(T0);
        assert.deepEqual(empty.rules, []);
        const entries = await store.revoke(
          makeRevocation([
            tokenRule('short', T0 + SECOND),
            tokenRule('long', T0 + DAY),
            sessionRule('s', T0 + HOUR),
          ]),
        );
        // A reader that starts from the empty store's cursor misses nothing.
        assert.deepEqual(await store.readLog(empty.cursor, 100), entries);
        const last = entries.at(-1)!.cursor;
        const at = async (ms: number) => {
          const s = await store.snapshot(ms);
          assert.equal(s.cursor, last);
          return s.rules;
        };
        assert.deepEqual(
          await at(T0),
          entries.map((e) => e.rule),
        );
        assert.deepEqual(
          await at(T0 + SECOND - 1),
          entries.map((e) => e.rule),
        );
        // A rule is expired at its expiresAtMs.
        assert.deepEqual(await at(T0 + SECOND), [tokenRule('long', T0 + DAY), sessionRule('s', T0 + HOUR)]);
        assert.deepEqual(await at(T0 + HOUR), [tokenRule('long', T0 + DAY)]);
        assert.deepEqual(await at(T0 + DAY), []);
      });

      test('prune deletes expired rules, returns their count, and the cursor never goes backwards', async (t) => {
        const { store } = await setup(t);
        const entries = await store.revoke(
          makeRevocation([
            tokenRule('a', T0 + SECOND),
            tokenRule('b', T0 + HOUR),
            tokenRule('c', T0 + SECOND),
          ]),
        );
        const last = entries.at(-1)!.cursor;
        assert.equal(await store.prune(T0 + SECOND - 1), 0);
        assert.equal(await store.prune(T0 + SECOND), 2);
        assert.deepEqual(await readWholeLog(store), [entries[1]]);
        assert.equal(await store.prune(T0 + SECOND), 0);
        assert.equal(await store.prune(T0 + HOUR), 1);
        assert.deepEqual(await readWholeLog(store), []);
        const snapshot = await store.snapshot(T0 + HOUR);
        assert.deepEqual(snapshot, { cursor: last, rules: [] });
        const [next] = await store.revoke(makeRevocation([tokenRule('d', T0 + DAY)], { nowMs: T0 + HOUR }));
        assert.ok(next!.cursor > last);
        assert.equal((await store.snapshot(T0 + HOUR)).cursor, next!.cursor);
      });

      test('prune deletes sessions and their tokens long past their end, and keeps recent and live ones', async (t) => {
        const { store } = await setup(t);
        await store.openSession(makeSession('ended', { subject: 'alice' }));
        await store.openSession(makeSession('expired', { subject: 'alice', absoluteExpiresAtMs: T0 + HOUR }));
        await store.openSession(
          makeSession('live', { subject: 'alice', absoluteExpiresAtMs: T0 + 3650 * DAY }),
        );
        await store.revoke(makeRevocation([], { effects: [{ kind: 'end-session', sid: 'ended' }] }));
        // Just ended or expired: kept for listing and forensics.
        await store.prune(T0 + 2 * HOUR);
        assert.deepEqual(
          (await store.listSessions('alice', { includeEnded: true, nowMs: T0 + 2 * HOUR }))
            .map((s) => s.sid)
            .sort(),
          ['ended', 'expired', 'live'],
        );
        // A year later they are gone, with their refresh tokens.
        await store.prune(T0 + 365 * DAY);
        assert.deepEqual(
          (await store.listSessions('alice', { includeEnded: true, nowMs: T0 + 365 * DAY })).map(
            (s) => s.sid,
          ),
          ['live'],
        );
        assert.equal(await store.getSession('ended'), undefined);
        assert.equal(await store.findRefreshToken('rt-ended'), undefined);
        assert.equal(await store.findRefreshToken('rt-expired'), undefined);
        assert.equal((await store.findRefreshToken('rt-live'))?.fid, 'fam-live');
      });
    });

    describe('back-channel logout outbox', () => {
      const MINUTE = 60 * SECOND;
      /** The client without a back-channel logout URI. */
      const quiet = () => makeClient('quiet', { backchannelLogoutUri: undefined });

      /** Claims and settles everything due at `nowMs`, so a test starts from an empty outbox. */
      async function drain(store: Store, nowMs: number): Promise<void> {
        for (const d of await store.claimLogoutDeliveries(nowMs, 1000, MINUTE)) {
          assert.equal(await store.completeLogoutDelivery(d, { kind: 'delivered', audit: [] }), true);
        }
      }

      const sidsOf = (deliveries: readonly { sid: string }[]) => deliveries.map((d) => d.sid).sort();

      test('ending a session queues one delivery for its client, in the same write, claimable once', async (t) => {
        const { store } = await setup(t);
        await store.saveClient(makeClient('app'));
        await store.saveClient(quiet());
        await store.openSession(makeSession('s1', { clientId: 'app' }));
        await store.openSession(makeSession('s2', { clientId: 'quiet' }));
        assert.deepEqual(await store.claimLogoutDeliveries(T0 + HOUR, 10, MINUTE), []);
        const now = T0 + HOUR;
        await store.revoke(
          makeRevocation([sessionRule('s1'), sessionRule('s2')], {
            effects: [
              { kind: 'end-session', sid: 's1' },
              { kind: 'end-session', sid: 's2' },
            ],
            reason: 'logout',
            nowMs: now,
          }),
        );
        const claimed = await store.claimLogoutDeliveries(now, 10, MINUTE);
        assert.equal(claimed.length, 1);
        const [delivery] = claimed;
        assert.ok(Number.isInteger(delivery!.id) && delivery!.id > 0);
        assert.deepEqual(defined({ ...delivery!, id: 0 }), {
          id: 0,
          sid: 's1',
          subject: 'alice',
          clientId: 'app',
          uri: 'https://app.example.com/logout',
          reason: 'logout',
          createdAtMs: now,
          attempts: 1,
        });
        assert.equal(delivery!.lastError, undefined);
        // Leased: not claimable again at once. Ending the same session again queues nothing new.
        await store.revoke(makeRevocation([], { effects: [{ kind: 'end-session', sid: 's1' }], nowMs: now }));
        assert.deepEqual(await store.claimLogoutDeliveries(now, 10, MINUTE), []);
      });

      // Sessions: [sid, subject, client, claims].
      const WORLD: ReadonlyArray<readonly [string, string, string, Record<string, unknown>]> = [
        ['a1', 'alice', 'app', { roles: ['admin', 'dev'] }],
        ['a2', 'alice', 'web', { roles: 'dev' }],
        ['b1', 'bob', 'app', { roles: 'admin' }],
        ['c1', 'carol', 'quiet', { roles: ['dev'] }],
        ['d1', 'dave', 'app', { roles: 'dev' }],
      ];
      const cases: ReadonlyArray<{ readonly effect: RevocationEffect; readonly queued: readonly string[] }> =
        [
          { effect: { kind: 'end-session', sid: 'a1' }, queued: ['a1'] },
          { effect: { kind: 'end-session', sid: 'c1' }, queued: [] },
          { effect: { kind: 'end-subject-sessions', subject: 'alice' }, queued: ['a1', 'a2'] },
          { effect: { kind: 'end-client-sessions', clientId: 'web' }, queued: ['a2'] },
          { effect: { kind: 'end-client-sessions', clientId: 'quiet' }, queued: [] },
          { effect: { kind: 'end-claim-sessions', claim: 'roles', value: 'dev' }, queued: ['a1', 'a2'] },
          { effect: { kind: 'end-claim-sessions', claim: 'roles', value: 'admin' }, queued: ['a1', 'b1'] },
          { effect: { kind: 'end-all-sessions' }, queued: ['a1', 'a2', 'b1'] },
          { effect: { kind: 'end-family', fid: 'fam-a1' }, queued: [] },
          { effect: { kind: 'suspend-subject', subject: 'alice' }, queued: [] },
        ];
      for (const row of cases) {
        test(`effect ${JSON.stringify(row.effect)} queues exactly the live sessions it ends whose client has a logout URI`, async (t) => {
          const { store } = await setup(t);
          await store.saveClient(makeClient('app'));
          await store.saveClient(makeClient('web'));
          await store.saveClient(quiet());
          for (const [sid, subject, clientId, claims] of WORLD) {
            await store.openSession(makeSession(sid, { subject, clientId, claims }));
          }
          // Already ended (d1) or past its absolute lifetime (x1): no logout token for them now.
          await store.openSession(
            makeSession('x1', { subject: 'alice', claims: { roles: 'dev' }, absoluteExpiresAtMs: T0 + 1 }),
          );
          await store.revoke(makeRevocation([], { effects: [{ kind: 'end-session', sid: 'd1' }] }));
          await drain(store, T0);
          const now = T0 + HOUR;
          await store.revoke(
            makeRevocation([], { effects: [row.effect], reason: 'effect-test', nowMs: now }),
          );
          const claimed = await store.claimLogoutDeliveries(now, 100, MINUTE);
          assert.deepEqual(sidsOf(claimed), [...row.queued]);
          for (const d of claimed) {
            const [, subject, clientId] = WORLD.find(([sid]) => sid === d.sid)!;
            assert.deepEqual(
              [d.subject, d.clientId, d.uri, d.reason, d.createdAtMs],
              [subject, clientId, `https://${clientId}.example.com/logout`, 'effect-test', now],
            );
          }
        });
      }

      test('a revocation that is rolled back queues nothing', async (t) => {
        const { store } = await setup(t);
        await store.saveClient(makeClient('app'));
        await store.openSession(makeSession('s1'));
        await assert.rejects(
          store.revoke(
            makeRevocation([sessionRule('s1')], {
              effects: [{ kind: 'end-session', sid: 's1' }],
              audit: [makeAudit('revoked', { detail: { n: 1n } })],
            }),
          ),
        );
        assert.deepEqual(await store.claimLogoutDeliveries(T0 + DAY, 10, MINUTE), []);
      });

      test('refresh-token reuse queues the logout of the session it ends', async (t) => {
        const { store } = await setup(t);
        await store.saveClient(makeClient('app'));
        await store.openSession(makeSession('s1'));
        await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: T0 + SECOND }));
        const now = T0 + HOUR;
        assert.equal((await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: now }))).kind, 'reuse');
        const claimed = await store.claimLogoutDeliveries(now, 10, MINUTE);
        assert.deepEqual(
          claimed.map((d) => [d.sid, d.clientId, d.reason]),
          [['s1', 'app', 'refresh_token_reuse']],
        );
      });

      test('claims are leased, limited, oldest due first; an expired lease is claimed again with one more attempt', async (t) => {
        const { store } = await setup(t);
        await store.saveClient(makeClient('app'));
        for (const sid of ['s1', 's2', 's3']) await store.openSession(makeSession(sid, { subject: sid }));
        for (const [i, sid] of ['s1', 's2', 's3'].entries()) {
          await store.revoke(
            makeRevocation([], { effects: [{ kind: 'end-session', sid }], nowMs: T0 + i * SECOND }),
          );
        }
        const now = T0 + 10 * SECOND;
        const first = await store.claimLogoutDeliveries(now, 2, MINUTE);
        assert.deepEqual(sidsOf(first), ['s1', 's2']);
        const second = await store.claimLogoutDeliveries(now, 10, MINUTE);
        assert.deepEqual(sidsOf(second), ['s3']);
        assert.deepEqual(await store.claimLogoutDeliveries(now + MINUTE - 1, 10, MINUTE), []);
        const again = await store.claimLogoutDeliveries(now + MINUTE, 10, MINUTE);
        assert.deepEqual(sidsOf(again), ['s1', 's2', 's3']);
        assert.deepEqual(
          again.map((d) => d.attempts),
          [2, 2, 2],
        );
        // Concurrent claims never hand out one delivery twice.
        const later = now + 2 * MINUTE;
        const racing = await Promise.all(
          Array.from({ length: 5 }, () => store.claimLogoutDeliveries(later, 1, MINUTE)),
        );
        assert.deepEqual(sidsOf(racing.flat()), ['s1', 's2', 's3']);
      });

      test('completeLogoutDelivery: retry reschedules with the error; delivered and failed remove and audit; a stale claim changes nothing', async (t) => {
        const { store } = await setup(t);
        await store.saveClient(makeClient('app'));
        await store.openSession(makeSession('s1', { subject: 'alice' }));
        await store.openSession(makeSession('s2', { subject: 'bob' }));
        await store.revoke(makeRevocation([], { effects: [{ kind: 'end-all-sessions' }] }));
        const claimed = await store.claimLogoutDeliveries(T0, 10, MINUTE);
        const one = claimed.find((d) => d.sid === 's1')!;
        const two = claimed.find((d) => d.sid === 's2')!;

        assert.equal(
          await store.completeLogoutDelivery(one, {
            kind: 'retry',
            nextAttemptAtMs: T0 + 5 * SECOND,
            error: 'http_500',
          }),
          true,
        );
        assert.deepEqual(await store.claimLogoutDeliveries(T0 + 5 * SECOND - 1, 10, MINUTE), []);
        const retried = await store.claimLogoutDeliveries(T0 + 5 * SECOND, 10, MINUTE);
        assert.deepEqual(
          retried.map((d) => [d.id, d.sid, d.attempts, d.lastError]),
          [[one.id, 's1', 2, 'http_500']],
        );

        const delivered = makeAudit('logout_delivered', {
          sid: 's1',
          subject: 'alice',
          clientId: 'app',
          detail: { attempts: 2 },
        });
        // The first claim's lease has been superseded: it settles nothing.
        assert.equal(
          await store.completeLogoutDelivery(one, { kind: 'delivered', audit: [delivered] }),
          false,
        );
        assert.equal(
          await store.completeLogoutDelivery(retried[0]!, { kind: 'delivered', audit: [delivered] }),
          true,
        );
        assert.equal(
          await store.completeLogoutDelivery(retried[0]!, { kind: 'delivered', audit: [delivered] }),
          false,
        );
        const failed = makeAudit('logout_failed', { sid: 's2', subject: 'bob', detail: { attempts: 1 } });
        assert.equal(await store.completeLogoutDelivery(two, { kind: 'failed', audit: [failed] }), true);
        assert.equal(
          await store.completeLogoutDelivery(two, { kind: 'retry', nextAttemptAtMs: T0, error: 'x' }),
          false,
        );

        assert.deepEqual(await store.claimLogoutDeliveries(T0 + DAY, 10, MINUTE), []);
        assert.deepEqual(
          (await auditOf(store, { type: 'logout_delivered' })).map((e) => [e.sid, e.detail]),
          [['s1', { attempts: 2 }]],
        );
        assert.deepEqual(
          (await auditOf(store, { type: 'logout_failed' })).map((e) => [e.sid, e.detail]),
          [['s2', { attempts: 1 }]],
        );
      });

      test('queued deliveries survive close and reopen', async (t) => {
        const handle = await setup(t);
        if (!handle.reopen) {
          t.skip('this backend cannot be reopened');
          return;
        }
        await handle.store.saveClient(makeClient('app'));
        await handle.store.openSession(makeSession('s1'));
        await handle.store.revoke(makeRevocation([], { effects: [{ kind: 'end-session', sid: 's1' }] }));
        await handle.store.close();
        const reopened = await handle.reopen();
        assert.deepEqual(sidsOf(await reopened.claimLogoutDeliveries(T0, 10, MINUTE)), ['s1']);
      });
    });

    describe('audit', () => {
      test('readAudit returns events with every field, filtered, and pages by afterId', async (t) => {
        const { store } = await setup(t);
        const events: AuditEvent[] = [
          makeAudit('issued', { actor: 'app', subject: 'alice', clientId: 'app', sid: 's1', jti: 'j1' }),
          makeAudit('revoked', {
            actor: 'admin:ops',
            subject: 'alice',
            reason: 'password_change',
            detail: { n: 3 },
          }),
          makeAudit('issued', { actor: 'web', subject: 'bob', clientId: 'web', sid: 's2', jti: 'j2' }),
          makeAudit('introspected', { actor: 'api', clientId: 'api', jti: 'j1' }),
          makeAudit('issued', { atMs: T0 + 1, actor: 'app', subject: 'alice', clientId: 'app', sid: 's3' }),
        ];
        await store.appendAudit(events.slice(0, 2));
        await store.appendAudit(events.slice(2));
        const all = await store.readAudit({ limit: 100 });
        assert.deepEqual(
          all.map(({ id: _, ...event }) => defined(event)),
          events.map(defined),
        );
        for (let i = 1; i < all.length; i++) assert.ok(all[i]!.id > all[i - 1]!.id);
        const jtis = (records: readonly AuditEvent[]) => records.map((r) => `${r.type}:${r.jti ?? r.reason}`);
        assert.deepEqual(jtis(await store.readAudit({ subject: 'alice', limit: 100 })), [
          'issued:j1',
          'revoked:password_change',
          'issued:undefined',
        ]);
        assert.deepEqual(jtis(await store.readAudit({ clientId: 'web', limit: 100 })), ['issued:j2']);
        assert.deepEqual(jtis(await store.readAudit({ sid: 's1', limit: 100 })), ['issued:j1']);
        assert.deepEqual(jtis(await store.readAudit({ type: 'introspected', limit: 100 })), [
          'introspected:j1',
        ]);
        assert.deepEqual(
          jtis(await store.readAudit({ type: 'issued', subject: 'alice', clientId: 'app', limit: 100 })),
          ['issued:j1', 'issued:undefined'],
        );
        assert.deepEqual(await store.readAudit({ subject: 'nobody', limit: 100 }), []);
        // Paging.
        const first = await store.readAudit({ limit: 2 });
        assert.deepEqual(first, all.slice(0, 2));
        const second = await store.readAudit({ afterId: first.at(-1)!.id, limit: 2 });
        assert.deepEqual(second, all.slice(2, 4));
        const third = await store.readAudit({ afterId: second.at(-1)!.id, limit: 2 });
        assert.deepEqual(third, all.slice(4));
        assert.deepEqual(await store.readAudit({ afterId: all.at(-1)!.id, limit: 2 }), []);
        const alicePage = await store.readAudit({ subject: 'alice', afterId: all[0]!.id, limit: 1 });
        assert.deepEqual(
          alicePage.map((r) => r.id),
          [all[1]!.id],
        );
      });
    });

    describe('write isolation and durability', () => {
      test('a write that throws inside the store rejects alone; the other writes of the same tick commit', async (t) => {
        const { store, announcedEntries } = await setup(t);
        await store.openSession(makeSession('s1', { subject: 'alice' }));
        const duplicate: OpenSessionInput = {
          ...makeSession('s1', { subject: 'mallory', createdAtMs: T0 + 5 }),
          familyId: 'fam-dup',
          refreshTokenHash: 'rt-dup',
        };
        const results = await Promise.allSettled([
          store.saveClient(makeClient('app')),
          store.openSession(duplicate),
          store.revoke(makeRevocation([tokenRule('j1')])),
          store.openSession(makeSession('s2', { subject: 'bob' })),
          store.appendAudit([makeAudit('introspected', { actor: 'api' })]),
        ]);
        assert.deepEqual(
          results.map((r) => r.status),
          ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'],
        );
        assert.equal((await store.getClient('app'))?.id, 'app');
        assert.equal((await store.getSession('s1'))?.subject, 'alice');
        assert.equal(await store.findRefreshToken('rt-dup'), undefined);
        assert.equal((await store.findRefreshToken('rt-s1'))?.fid, 'fam-s1');
        assert.equal((await store.getSession('s2'))?.subject, 'bob');
        assert.deepEqual(
          (await readWholeLog(store)).map((e) => e.rule),
          [tokenRule('j1')],
        );
        assert.deepEqual(announcedEntries(), await readWholeLog(store));
        assert.deepEqual(await store.listSessions('mallory', { includeEnded: true, nowMs: T0 }), []);
        assert.deepEqual(
          (await auditOf(store, { type: 'session_opened' })).map((e) => e.sid),
          ['s1', 's2'],
        );
        assert.equal((await auditOf(store, { type: 'introspected' })).length, 1);
      });

      test('everything written survives close and reopen', async (t) => {
        const handle = await setup(t);
        if (!handle.reopen) {
          t.skip('this backend cannot be reopened');
          return;
        }
        const { store } = handle;
        await store.saveClient(makeClient('app'));
        await store.saveSigningKeys([makeKey('k1', 'active', T0)], [makeAudit('key_created')]);
        const secret = await store.getOrCreateSecret('rotation-key', () => 'the-secret');
        await store.openSession(makeSession('s1', { subject: 'alice', claims: { roles: ['admin'] } }));
        await store.openSession(makeSession('s2', { subject: 'bob' }));
        await store.rotateRefreshToken(makeRotate('rt-s1', { nowMs: T0 + SECOND }));
        const entries = await store.revoke(
          makeRevocation([tokenRule('j1'), sessionRule('s2')], {
            effects: [
              { kind: 'end-session', sid: 's2' },
              { kind: 'suspend-subject', subject: 'bob' },
            ],
          }),
        );
        const audit = await store.readAudit({ limit: 100 });
        await store.close();

        const reopened = await handle.reopen();
        assert.equal((await reopened.getClient('app'))?.secretHash, makeClient('app').secretHash);
        assert.deepEqual(
          (await reopened.listSigningKeys()).map((k) => [k.kid, k.state]),
          [['k1', 'active']],
        );
        assert.equal(await reopened.getOrCreateSecret('rotation-key', () => 'another'), secret);
        assert.deepEqual((await reopened.getSession('s1'))?.claims, { roles: ['admin'] });
        assert.equal((await reopened.getSession('s1'))?.lastUsedAtMs, T0 + SECOND);
        assert.equal((await reopened.findRefreshToken('rt-s1'))?.rotated, true);
        assert.equal((await reopened.findRefreshToken(successorOf('rt-s1')))?.rotated, false);
        assert.equal((await reopened.getSession('s2'))?.endedAtMs, T0);
        assert.equal(await reopened.isSubjectSuspended('bob'), true);
        assert.deepEqual(await reopened.readLog(0, 100), entries);
        assert.deepEqual(await reopened.snapshot(T0), {
          cursor: entries.at(-1)!.cursor,
          rules: entries.map((e) => e.rule),
        });
        assert.deepEqual(await reopened.readAudit({ limit: 100 }), audit);
        // The log continues after the last durable position, and rotation continues from the durable head.
        const [next] = await reopened.revoke(makeRevocation([tokenRule('j2')]));
        assert.ok(next!.cursor > entries.at(-1)!.cursor);
        assert.equal(
          (await reopened.rotateRefreshToken(makeRotate(successorOf('rt-s1'), { nowMs: T0 + 2 * SECOND })))
            .kind,
          'rotated',
        );
      });
    });
  });
}

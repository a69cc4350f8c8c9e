/**
 * Child process of `token-service`: the load generator, apart from both servers. N workers, each one request in
 * flight at a time over its own keep-alive connection (`node:http`, one agent per server), check every answer
 * (status and body), so a wrong answer fails the benchmark instead of being timed.
 *
 * IPC, one request at a time: `prepare` mints the tokens a run consumes (not timed), `run` times one batch and
 * answers `{ ops }`; `chains` hands over refresh tokens, whose successors the workers keep across batches.
 */
import { Agent, request } from 'node:http';

export type Op = 'issue' | 'refresh' | 'revoke' | 'introspect';

export interface Target {
  readonly name: string;
  readonly port: number;
  readonly tokenPath: string;
  readonly revokePath: string;
  readonly introspectPath: string;
  /** `Basic …` (client_secret_basic). */
  readonly authorization: string;
  /** Form body of the timed issuance: client credentials for the resource, a JWT access token. */
  readonly issueBody: string;
  /** Form body minting the tokens revoked and introspected. */
  readonly poolBody: string;
}

export type Message =
  | { readonly type: 'prepare'; readonly target: Target; readonly op: Op; readonly count: number }
  | {
      readonly type: 'run';
      readonly target: Target;
      readonly op: Op;
      readonly clients: number;
      /** Run for this long (calibration: how many operations fit in the window)… */
      readonly windowMs?: number;
      /** …or exactly this many operations (the timed batches; revocation: the whole pool). */
      readonly count?: number;
    }
  | { readonly type: 'chains'; readonly target: Target; readonly refreshTokens: readonly string[] };

export type Answer =
  | { readonly ok: true; readonly ops: number }
  | { readonly ok: false; readonly error: string };

const agents = new Map<number, Agent>();
/** Refresh tokens per server: worker i rotates chain i. */
const chains = new Map<string, string[]>();
/** Tokens to revoke (consumed) and to introspect (re-used), per server. */
const pools = new Map<string, string[]>();

function post(target: Target, path: string, body: string): Promise<{ status: number; text: string }> {
  let agent = agents.get(target.port);
  if (!agent) {
    agent = new Agent({ keepAlive: true, maxSockets: 64 });
    agents.set(target.port, agent);
  }
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port: target.port,
        path,
        method: 'POST',
        headers: {
          authorization: target.authorization,
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function fail(target: Target, what: string, answer: { status: number; text: string }): never {
  throw new Error(`${target.name} ${what}: HTTP ${answer.status} ${answer.text.slice(0, 300)}`);
}

async function accessToken(target: Target, body: string): Promise<string> {
  const answer = await post(target, target.tokenPath, body);
  const token = answer.status === 200 ? (JSON.parse(answer.text).access_token as unknown) : undefined;
  if (typeof token !== 'string') fail(target, 'token', answer);
  return token;
}

/** One operation; throws on a wrong answer. */
async function once(target: Target, op: Op, worker: number): Promise<void> {
  switch (op) {
    case 'issue': {
      const token = await accessToken(target, target.issueBody);
      if (token.split('.').length !== 3) throw new Error(`${target.name}: access token is not a JWT`);
      return;
    }
    case 'refresh': {
      const chain = chains.get(target.name)!;
      const presented = chain[worker]!;
      const answer = await post(
        target,
        target.tokenPath,
        `grant_type=refresh_token&refresh_token=${encodeURIComponent(presented)}`,
      );
      const body = answer.status === 200 ? JSON.parse(answer.text) : undefined;
      if (
        typeof body?.access_token !== 'string' ||
        body.access_token.split('.').length !== 3 ||
        typeof body.refresh_token !== 'string' ||
        body.refresh_token === presented
      ) {
        fail(target, 'refresh', answer);
      }
      chain[worker] = body.refresh_token;
      return;
    }
    case 'revoke': {
      const token = pools.get(`${target.name}:revoke`)!.pop();
      if (token === undefined) throw new Error(`${target.name}: revocation pool exhausted`);
      const answer = await post(
        target,
        target.revokePath,
        `token=${encodeURIComponent(token)}&token_type_hint=access_token`,
      );
      if (answer.status !== 200) fail(target, 'revoke', answer);
      return;
    }
    case 'introspect': {
      const pool = pools.get(`${target.name}:introspect`)!;
      const token = pool[(worker * 7 + counter++) % pool.length]!;
      const answer = await post(target, target.introspectPath, `token=${encodeURIComponent(token)}`);
      if (answer.status !== 200 || JSON.parse(answer.text).active !== true)
        fail(target, 'introspect', answer);
      return;
    }
  }
}
let counter = 0;

async function mint(target: Target, count: number): Promise<string[]> {
  const out: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next += 1;
      out.push(await accessToken(target, target.poolBody));
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, count) }, worker));
  return out;
}

async function handle(message: Message): Promise<number> {
  const { target } = message;
  switch (message.type) {
    case 'chains':
      chains.set(target.name, [...message.refreshTokens]);
      return 0;
    case 'prepare': {
      if (message.op === 'revoke') {
        pools.set(`${target.name}:revoke`, await mint(target, message.count));
      } else if (message.op === 'introspect' && !pools.has(`${target.name}:introspect`)) {
        pools.set(`${target.name}:introspect`, await mint(target, message.count));
      }
      return 0;
    }
    case 'run': {
      const { op, clients, windowMs, count } = message;
      let started = 0;
      let done = 0;
      const end = performance.now() + (windowMs ?? 0);
      const more = count !== undefined ? () => started < count : () => performance.now() < end;
      const worker = async (i: number) => {
        while (more()) {
          started += 1;
          await once(target, op, i);
          done += 1;
        }
      };
      await Promise.all(Array.from({ length: clients }, (_, i) => worker(i)));
      return done;
    }
  }
}

process.on('message', (message: Message) => {
  handle(message).then(
    (ops) => process.send?.({ ok: true, ops } satisfies Answer),
    (error: unknown) =>
      process.send?.({ ok: false, error: String((error as Error)?.stack ?? error) } satisfies Answer),
  );
});
process.on('disconnect', () => process.exit(0));

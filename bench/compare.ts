/**
 * A change's effect on the token service, measured side by side: revokd as it is in this checkout against revokd in
 * another checkout (the code before the change), both real servers on the embedded store, driven by the
 * `token-service` load generator in alternating batches; the ratio is taken within each round. Not part of the
 * suite: a tool for the engineer who wants to know what a change did, on a machine whose absolute numbers drift.
 *
 *   git worktree add ../before HEAD~1 && (cd ../before && npm ci)
 *   node bench/compare.ts ../before refresh 16        # op: issue | refresh | revoke | introspect; clients; [rounds]
 *
 * Prints each side's median rate and the median (and every) ratio this ÷ before.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { basicAuthorization, openSessions, revokdTarget } from './lib/revokd-client.ts';
import type { Answer, Message, Op, Target } from './lib/token-service-load.ts';

const OPS: readonly Op[] = ['issue', 'refresh', 'revoke', 'introspect'];
const [beforeDir, opArg, clientsArg, roundsArg] = process.argv.slice(2);
const op = opArg as Op;
const clients = Number(clientsArg ?? 16);
const rounds = Number(roundsArg ?? 6);
if (!beforeDir || !OPS.includes(op) || !(clients > 0) || !(rounds > 0)) {
  process.stderr.write(`usage: node bench/compare.ts BEFORE_CHECKOUT ${OPS.join('|')} CLIENTS [ROUNDS]\n`);
  process.exit(2);
}

const API = 'https://api.example.com';
const SCRIPT = 'bench/lib/token-service-revokd.ts';
const secret = randomBytes(24).toString('base64url');
const authorization = basicAuthorization('bench', secret);
const dirs: string[] = [];
const children: ChildProcess[] = [];

const spawn = (script: string, args: readonly string[]) => {
  const child = fork(script, args, { execArgv: ['--disable-warning=ExperimentalWarning'] });
  children.push(child);
  return child;
};
const next = <T>(child: ChildProcess, message?: Message): Promise<T> =>
  new Promise((resolveMessage) => {
    child.once('message', (answer) => resolveMessage(answer as T));
    if (message) child.send(message);
  });
const ask = async (load: ChildProcess, message: Message): Promise<number> => {
  const answer = await next<Answer>(load, message);
  if (!answer.ok) throw new Error(answer.error);
  return answer.ops;
};

const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;

try {
  const load = spawn(resolve(import.meta.dirname, 'lib/token-service-load.ts'), []);
  const sides = new Map<string, Target>();
  for (const [name, checkout] of [
    ['this', resolve(import.meta.dirname, '..')],
    ['before', resolve(beforeDir)],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'revokd-compare-'));
    dirs.push(dir);
    const server = spawn(join(checkout, SCRIPT), [dir, API, 'bench', secret]);
    const { port } = await next<{ port: number }>(server);
    const target = revokdTarget(name, port, authorization, API);
    sides.set(name, target);
    if (op === 'refresh')
      await ask(load, {
        type: 'chains',
        target,
        refreshTokens: await openSessions(port, authorization, API, clients),
      });
    if (op === 'introspect') await ask(load, { type: 'prepare', target, op, count: 256 });
  }
  const rates = new Map<string, number[]>([...sides.keys()].map((name) => [name, []]));
  const ratios: number[] = [];
  // One warm-up round, then `rounds`; the order alternates so neither side always runs first.
  for (let round = 0; round <= rounds; round++) {
    const inRound = new Map<string, number>();
    const order = round % 2 === 0 ? ['this', 'before'] : ['before', 'this'];
    for (const name of order) {
      const target = sides.get(name)!;
      if (op === 'revoke') {
        const count = 2000;
        await ask(load, { type: 'prepare', target, op, count });
        const start = performance.now();
        await ask(load, { type: 'run', target, op, clients, count });
        inRound.set(name, count / ((performance.now() - start) / 1000));
      } else {
        inRound.set(name, await ask(load, { type: 'run', target, op, clients, windowMs: 1000 }));
      }
    }
    if (round === 0) continue;
    for (const [name, rate] of inRound) rates.get(name)!.push(rate);
    ratios.push(inRound.get('this')! / inRound.get('before')!);
  }
  const rate = (name: string) => Math.round(median(rates.get(name)!)).toLocaleString('en-US');
  process.stdout.write(
    `${op} · ${clients} client${clients === 1 ? '' : 's'}: this ${rate('this')}/s, before ${rate('before')}/s, ` +
      `this ÷ before ${median(ratios).toFixed(2)}× (rounds: ${ratios.map((r) => r.toFixed(2)).join(' ')})\n`,
  );
} finally {
  for (const child of children) child.kill('SIGTERM');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

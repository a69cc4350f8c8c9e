/** A guard started against a {@link FakeServer}, with timings short enough for tests, closed when the test ends. */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { TestContext } from 'node:test';
import { GUARD_CHANNEL, type GuardEvent } from '../../src/events.ts';
import { createGuard, type Guard, type GuardOptions } from '../../src/guard.ts';
import { BASE, CLIENT, FakeServer } from './fake-server.ts';
import { AUDIENCE, NOW_MS, type TestKey } from './keys.ts';

export interface GuardSetup {
  readonly server: FakeServer;
  readonly guard: Guard;
  /** The guard's clock: move `nowMs` to move time. Starts at `NOW_MS`. */
  readonly clock: { nowMs: number };
}

/**
 * Creates the guard without waiting for it to be ready: the caller drives the server's streams.
 * `key` is published in the server's JWKS unless the server already publishes keys; `options` override the
 * defaults here (an option passed as `undefined` gets the guard's own default).
 */
export function startGuard(
  t: Pick<TestContext, 'after'>,
  key: TestKey,
  options: Partial<GuardOptions> = {},
  server = new FakeServer(),
): GuardSetup {
  if (server.jwks.keys.length === 0) server.jwks = { keys: [key.jwk] };
  const clock = { nowMs: NOW_MS };
  const guard = createGuard({
    issuer: BASE,
    audience: AUDIENCE,
    clientId: CLIENT.id,
    clientSecret: CLIENT.secret,
    fetch: server.fetch,
    now: () => clock.nowMs,
    maxStalenessMs: 10_000,
    reconnect: { initialDelayMs: 5, maxDelayMs: 20 },
    readyTimeoutMs: 3000,
    ...options,
  });
  t.after(() => guard.close());
  return { server, guard, clock };
}

/** Collects the guard's diagnostics-channel events until the test ends. */
export function events(t: { after(fn: () => void): void }): GuardEvent[] {
  const seen: GuardEvent[] = [];
  const listener = (message: unknown) => seen.push(message as GuardEvent);
  subscribe(GUARD_CHANNEL, listener);
  t.after(() => unsubscribe(GUARD_CHANNEL, listener));
  return seen;
}

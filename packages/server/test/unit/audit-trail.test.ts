import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AuditLoss, AuditTrail } from '../../src/services/audit-trail.ts';
import type { AuditEvent } from '../../src/store/port.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

const T0 = Date.UTC(2026, 0, 1);

function event(i: number): AuditEvent {
  return { type: 'introspected', atMs: T0 + i, actor: 'api', detail: { active: true, i } };
}

/**
 * The store side of the trail, driven by the test: every `appendAudit` call is kept with its events and settled
 * when the test says so (or at once, with `autoSettle`).
 */
class ScriptedStore {
  readonly calls: Array<{
    events: readonly AuditEvent[];
    resolve: () => void;
    reject: (error: unknown) => void;
  }> = [];
  autoSettle: 'resolve' | 'reject' | 'throw' | undefined;

  appendAudit(events: readonly AuditEvent[]): Promise<void> {
    if (this.autoSettle === 'throw') throw new Error('store closed');
    return new Promise<void>((resolve, reject) => {
      this.calls.push({ events, resolve, reject });
      if (this.autoSettle === 'resolve') resolve();
      if (this.autoSettle === 'reject') reject(new Error('disk full'));
    });
  }

  get written(): AuditEvent[] {
    return this.calls.flatMap((c) => c.events);
  }
}

describe('AuditTrail', () => {
  test('record returns at once; events recorded within maxDelayMs reach the store together, in order', async () => {
    const store = new ScriptedStore();
    store.autoSettle = 'resolve';
    const trail = new AuditTrail(store, { maxDelayMs: 20 });
    for (let i = 0; i < 5; i++) trail.record([event(i)]);
    assert.equal(store.calls.length, 0, 'nothing is written while the request is being answered');
    assert.equal(trail.stats.pending, 5);
    await sleep(60);
    assert.equal(store.calls.length, 1, 'one store write for the five events');
    assert.deepEqual(
      store.written.map((e) => e.atMs),
      [0, 1, 2, 3, 4].map((i) => T0 + i),
    );
    assert.deepEqual(trail.stats, { recorded: 5, written: 5, lost: 0, pending: 0 });
  });

  test('a full batch is handed to the store at once, without waiting for the delay', () => {
    const store = new ScriptedStore();
    const trail = new AuditTrail(store, { maxDelayMs: 60_000, maxBatch: 3 });
    trail.record([event(0), event(1)]);
    assert.equal(store.calls.length, 0);
    trail.record([event(2)]);
    assert.equal(store.calls.length, 1);
    assert.equal(store.calls[0]!.events.length, 3);
  });

  test('flush hands over what waits and resolves once the store has committed it', async () => {
    const store = new ScriptedStore();
    const trail = new AuditTrail(store, { maxDelayMs: 60_000 });
    trail.record([event(0)]);
    let flushed = false;
    const flushing = trail.flush().then(() => {
      flushed = true;
    });
    assert.equal(store.calls.length, 1, 'flush does not wait for the delay');
    await sleep(5);
    assert.equal(flushed, false, 'not before the store has answered');
    store.calls[0]!.resolve();
    await flushing;
    assert.deepEqual(trail.stats, { recorded: 1, written: 1, lost: 0, pending: 0 });
  });

  test('a failing store fails no caller: the loss is counted and reported', async () => {
    const store = new ScriptedStore();
    store.autoSettle = 'reject';
    const trail = new AuditTrail(store, { maxDelayMs: 60_000 });
    const losses: AuditLoss[] = [];
    trail.onLoss(() => {
      throw new Error('a broken listener');
    });
    trail.onLoss((loss) => losses.push(loss));
    trail.record([event(0), event(1)]);
    await trail.flush();
    assert.equal(losses.length, 1);
    assert.equal(losses[0]!.reason, 'write_failed');
    assert.equal(losses[0]!.events, 2);
    assert.match(String(losses[0]!.error), /disk full/);
    assert.deepEqual(trail.stats, { recorded: 2, written: 0, lost: 2, pending: 0 });

    store.autoSettle = 'throw';
    trail.record([event(2)]);
    await trail.flush();
    assert.equal(losses.at(-1)!.reason, 'write_failed', 'a store that throws instead of rejecting');
    assert.equal(trail.stats.lost, 3);
  });

  test('the queue is bounded: past maxPending, new events are dropped and counted', async () => {
    const store = new ScriptedStore(); // never answers: a store that has stalled
    const trail = new AuditTrail(store, { maxDelayMs: 60_000, maxBatch: 2, maxPending: 4 });
    const losses: AuditLoss[] = [];
    trail.onLoss((loss) => losses.push(loss));
    for (let i = 0; i < 6; i++) trail.record([event(i)]);
    assert.equal(trail.stats.pending, 4, 'two batches in flight, nothing more held');
    assert.deepEqual(losses, [
      { reason: 'queue_full', events: 1 },
      { reason: 'queue_full', events: 1 },
    ]);
    for (const call of store.calls) call.resolve();
    await trail.flush();
    trail.record([event(6)]);
    assert.equal(trail.stats.pending, 1, 'room again once the store caught up');
    assert.deepEqual(trail.stats, { recorded: 7, written: 4, lost: 2, pending: 1 });
  });

  test('close flushes, and an event recorded after close is counted as lost', async () => {
    const store = new ScriptedStore();
    store.autoSettle = 'resolve';
    const trail = new AuditTrail(store, { maxDelayMs: 60_000 });
    const losses: AuditLoss[] = [];
    trail.onLoss((loss) => losses.push(loss));
    trail.record([event(0)]);
    await trail.close();
    assert.equal(store.written.length, 1);
    trail.record([event(1)]);
    assert.equal(store.written.length, 1);
    assert.deepEqual(losses, [{ reason: 'closed', events: 1 }]);
  });

  test('with the SQLite store, events recorded right before close are in the file afterwards', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'revokd-audit-trail-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'revokd.db');
    const store = SqliteStore.open({ path });
    const trail = new AuditTrail(store, { maxDelayMs: 60_000 });
    trail.record([event(0), event(1)]);
    trail.record([event(2)]);
    await trail.close();
    await store.close();

    const reopened = SqliteStore.open({ path });
    t.after(() => reopened.close());
    const events = await reopened.readAudit({ type: 'introspected', limit: 10 });
    assert.deepEqual(
      events.map((e) => e.detail),
      [0, 1, 2].map((i) => ({ active: true, i })),
    );
  });
});

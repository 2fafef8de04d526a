// The routing-table mirror against a real NATS server: it starts with what the bucket holds, follows
// puts and deletes, and sync() makes every completed write visible. A watch that stalls, ends or throws
// is forced by wrapping the real bucket, so sync() must give up within its bound and the mirror recover.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Plan, Route, WorkspaceRoute } from '@webhooks/contracts';
import { connectNats, ensureTopology, type Buckets } from './setup.js';
import { RoutingTable, RoutingTableBehindError, type MirrorState, type RouteChange } from './routing-table.js';
import { streamNames, topology, type Topology } from './topology.js';
import type { NatsConnection } from '@nats-io/transport-node';
import type { KV, KvWatchEntry, KvWatchOptions } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';

const natsUrl = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

function route(workspaceId: string, webhookId: string, active = true): Uint8Array {
  return Route.encode({ webhookId, workspaceId, name: webhookId, url: `https://example.com/${webhookId}`, eventTypes: ['contact.created'], headers: {}, active, secrets: [], version: 1, rateLimit: 0, auth: undefined }).finish();
}

/**
 * The real bucket, with every watch it opens under the test's control: entries can be held back (a
 * paused step), the next entry can make the watch throw, and the current watch can be ended.
 */
function controlledWatches(kv: KV) {
  let release: (() => void) | undefined;
  let held: Promise<void> | undefined;
  let throwNext = false;
  const opened: { options: KvWatchOptions | undefined; stop(): void }[] = [];
  const proxy = new Proxy(kv, {
    get(target, property) {
      if (property === 'watch') {
        return async (options?: KvWatchOptions) => {
          const inner = await target.watch(options);
          // Stopping a watch ends it even while its entries are held back, as stopping a real one does.
          let ended = false;
          let onEnd: () => void = () => {};
          const end = new Promise<void>((resolve) => (onEnd = resolve));
          const watch = {
            options,
            stop: () => {
              ended = true;
              onEnd();
              inner.stop();
            },
          };
          opened.push(watch);
          return {
            stop: watch.stop,
            async *[Symbol.asyncIterator](): AsyncGenerator<KvWatchEntry> {
              for await (const entry of inner) {
                while (held && !ended) await Promise.race([held, end]);
                if (ended) return;
                if (throwNext) {
                  throwNext = false;
                  throw new Error('watch broke (forced by the test)');
                }
                yield entry;
              }
            },
          };
        };
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    kv: proxy,
    opened,
    hold() {
      held = new Promise((resolve) => (release = resolve));
    },
    release() {
      held = undefined;
      release?.();
    },
    throwOnNextEntry() {
      throwNext = true;
    },
  };
}

async function eventually(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 20) {
    if (waited > 10_000) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('RoutingTable', () => {
  let nc: NatsConnection;
  let t: Topology;
  let buckets: Buckets;

  before(async () => {
    nc = await connectNats(natsUrl, 'routing-table-test');
    t = topology({ prefix: `rt_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}` });
    ({ buckets } = await ensureTopology(nc, t));
  });

  after(async () => {
    const jsm = await jetstreamManager(nc);
    for (const name of [...streamNames(t), ...Object.values(t.buckets).map((b) => `KV_${b}`)]) await jsm.streams.delete(name).catch(() => false);
    await nc.close();
  });

  it('opens with what the bucket holds, follows changes, and sync() sees every completed write', async () => {
    await buckets.routes.put(t.keys.workspace('ws1'), WorkspaceRoute.encode({ workspaceId: 'ws1', plan: Plan.PLAN_ADVANCED, version: 1 }).finish());
    await buckets.routes.put(t.keys.webhook('ws1', 'wh1'), route('ws1', 'wh1'));

    const changes: RouteChange[] = [];
    const table = await RoutingTable.open(buckets.routes, (change) => changes.push(change));
    try {
      assert.equal(table.workspace('ws1')?.plan, Plan.PLAN_ADVANCED);
      assert.deepEqual([...table.webhooksOf('ws1')].map((r) => r.webhookId), ['wh1']);

      // Writes followed by sync(): each is visible at once, with no waiting on timing.
      for (let i = 2; i <= 50; i++) {
        await buckets.routes.put(t.keys.webhook('ws1', `wh${i}`), route('ws1', `wh${i}`));
        await table.sync();
        assert.ok(table.route('ws1', `wh${i}`), `wh${i} not visible after sync`);
      }
      await buckets.routes.put(t.keys.webhook('ws1', 'wh1'), route('ws1', 'wh1', false));
      await buckets.routes.delete(t.keys.webhook('ws1', 'wh2'));
      await Promise.all([table.sync(), table.sync(), table.sync()]);
      assert.equal(table.route('ws1', 'wh1')?.active, false);
      assert.equal(table.route('ws1', 'wh2'), undefined);
      assert.equal(table.allRoutes().length, 49);

      const last = changes.at(-1)!;
      assert.deepEqual(last, { kind: 'webhook', workspaceId: 'ws1', webhookId: 'wh2', route: undefined });
    } finally {
      table.stop();
    }
  });

  it('opens on an empty bucket without waiting', async () => {
    const t2 = topology({ prefix: `${t.options.prefix}x` });
    const { buckets: empty } = await ensureTopology(nc, t2);
    const table = await RoutingTable.open(empty.routes);
    table.stop();
    const jsm = await jetstreamManager(nc);
    for (const name of [...streamNames(t2), ...Object.values(t2.buckets).map((b) => `KV_${b}`)]) await jsm.streams.delete(name).catch(() => false);
    assert.equal(table.allRoutes().length, 0);
  });

  it('rejects sync() within its bound while the watch is stalled, reports unhealthy, reopens the watch, and recovers when it moves', { timeout: 20_000 }, async () => {
    const watches = controlledWatches(buckets.routes);
    const states: MirrorState[] = [];
    const table = await RoutingTable.open(watches.kv, { syncTimeoutMs: 300, onState: (state) => states.push(state) });
    try {
      watches.hold();
      await buckets.routes.put(t.keys.webhook('ws1', 'stalled'), route('ws1', 'stalled'));
      const rejected = await table.sync().then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(rejected instanceof RoutingTableBehindError, `expected RoutingTableBehindError, got ${String(rejected)}`);
      assert.match(rejected.message, /^the routing table mirror is behind the bucket: revision \d+ applied, \d+ written/);
      assert.equal(table.route('ws1', 'stalled'), undefined);
      assert.equal(table.state().healthy, false);
      // Told once it fell behind (and again as the stalled watch is being reopened), never healthy meanwhile.
      assert.ok(states.length >= 1 && states.every((s) => !s.healthy), `readiness was told, and only unhealthy: ${JSON.stringify(states)}`);
      // Concurrent callers while stalled all get the error, none waits forever.
      const concurrent = await Promise.allSettled([table.sync(), table.sync(), table.sync()]);
      assert.deepEqual(concurrent.map((r) => r.status), ['rejected', 'rejected', 'rejected']);

      // The stalled watch was ended on purpose, so that a new one is opened from the last applied revision.
      await eventually(() => watches.opened.length >= 2, 'the stalled watch is reopened');

      watches.release();
      await eventually(() => table.route('ws1', 'stalled') !== undefined, 'the held entry is applied');
      await table.sync();
      await eventually(() => table.state().healthy, 'the mirror reports healthy again');
      assert.equal(states.at(-1)?.healthy, true);
    } finally {
      watches.release();
      table.stop();
    }
  });

  it('reopens a watch that throws or ends from the last applied revision, and catches up', { timeout: 20_000 }, async () => {
    const watches = controlledWatches(buckets.routes);
    const states: MirrorState[] = [];
    const table = await RoutingTable.open(watches.kv, { reopenDelayMs: 20, onState: (state) => states.push(state) });
    try {
      const before = table.revision();
      watches.throwOnNextEntry();
      await buckets.routes.put(t.keys.webhook('ws1', 'after-throw'), route('ws1', 'after-throw'));
      await eventually(() => watches.opened.length === 2, 'the watch is reopened');
      assert.equal(watches.opened[1]!.options?.resumeFromRevision, before + 1);
      await table.sync();
      assert.ok(table.route('ws1', 'after-throw'), 'the entry the broken watch dropped is applied by the new one');
      await eventually(() => table.state().healthy, 'the mirror reports healthy again');
      assert.ok(states.some((s) => !s.healthy && /watch failed: watch broke/.test(s.reason)), 'readiness was told while the watch was down');

      // A watch whose iterator simply ends (e.g. its consumer vanished) is reopened the same way.
      watches.opened[1]!.stop();
      await eventually(() => watches.opened.length === 3, 'the ended watch is reopened');
      await buckets.routes.delete(t.keys.webhook('ws1', 'after-throw'));
      await table.sync();
      assert.equal(table.route('ws1', 'after-throw'), undefined);
      await eventually(() => table.state().healthy, 'the mirror reports healthy after the second reopen');
      assert.ok(states.some((s) => !s.healthy && /watch ended/.test(s.reason)));
    } finally {
      table.stop();
    }
  });
});

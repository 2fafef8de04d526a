// The routing-table mirror against a real NATS server: it starts with what the bucket holds, follows
// puts and deletes, and sync() makes every completed write visible.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Plan, Route, WorkspaceRoute } from '@webhooks/contracts';
import { connectNats, ensureTopology, type Buckets } from './setup.js';
import { RoutingTable, type RouteChange } from './routing-table.js';
import { streamNames, topology, type Topology } from './topology.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

const natsUrl = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

function route(workspaceId: string, webhookId: string, active = true): Uint8Array {
  return Route.encode({ webhookId, workspaceId, name: webhookId, url: `https://example.com/${webhookId}`, eventTypes: ['contact.created'], headers: {}, active, secrets: [], version: 1 }).finish();
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
    await buckets.routes.put(t.keys.workspace('ws1'), WorkspaceRoute.encode({ workspaceId: 'ws1', plan: Plan.PLAN_ADVANCED }).finish());
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
});

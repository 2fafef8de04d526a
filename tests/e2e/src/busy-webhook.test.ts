// A customer's bulk import, the way it loads the system: a burst of 500 events for one workspace's one
// healthy webhook, published with PublishEvents, while another webhook of the same delivery shard hangs
// and a third, quiet one gets a few events. The busy webhook drains in its lane, in order, without one
// copy to the park; the hanging one is parked; the quiet one is not held behind either.
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Plan } from '@webhooks/contracts';
import { connectNats, deliverShardOf, jetstreamManager, topology } from '@webhooks/messaging';
import { callUnary, HttpReceiver, startSystem, testToken, uniqueName, waitUntil, type RunningSystem } from '@webhooks/testing';
import { contactCreated } from './support.js';

interface Hook {
  readonly workspaceId: string;
  readonly webhookId: string;
  readonly path: string;
}

describe('a burst to one healthy webhook beside a hanging one in the same shard', () => {
  let system: RunningSystem;
  let receiver: HttpReceiver;
  // Requests to the hanging webhook are held open until the test ends.
  const hanging = new Set<string>();
  const held: ServerResponse[] = [];

  before(async () => {
    receiver = await HttpReceiver.start((request, response) => {
      if (hanging.has(request.path)) held.push(response);
      else response.end('ok');
    });
    // A hanging request fails after 1 s and is retried 30 s later (the default schedule): parked meanwhile.
    system = await startSystem({ ATTEMPT_TIMEOUT: '1s' });
  });

  after(async () => {
    for (const response of held) response.destroy();
    await system?.stop();
    await receiver?.close();
  });

  /** Webhooks, each in a workspace of its own, until three share a delivery shard. */
  async function threeInOneShard(): Promise<[Hook, Hook, Hook]> {
    const byShard = new Map<number, Hook[]>();
    for (let i = 0; i < 40; i++) {
      const workspaceId = uniqueName(`burst${i}`);
      await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: `Burst ${i}`, plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
      const path = `/hook/${i}`;
      const created = await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: 'crm', url: `${receiver.url}/${i}`, eventTypes: ['contact.created'], headers: {} }, testToken);
      const hook = { workspaceId, webhookId: created.webhook!.id, path };
      const shard = deliverShardOf(hook.webhookId);
      const group = [...(byShard.get(shard) ?? []), hook];
      byShard.set(shard, group);
      if (group.length === 3) return group as [Hook, Hook, Hook];
    }
    throw new Error('no three webhooks in one shard among 40');
  }

  const arrivals = (hook: Hook) => receiver.requests.filter((r) => r.path === hook.path).map((r) => (JSON.parse(r.body) as { id: string }).id);
  const events = (hook: Hook, prefix: string, count: number) => Array.from({ length: count }, (_, n) => contactCreated(`${prefix}${String(n).padStart(3, '0')}`, hook.workspaceId));

  it('delivers 500 events to the busy webhook in order with no park copy, while the hanging one is parked and the quiet one keeps flowing', async () => {
    const [stuck, busy, quiet] = await threeInOneShard();
    hanging.add(stuck.path);
    const t = topology({ prefix: system.prefix });
    const stream = t.streams.deliver(busy.webhookId);
    assert.equal(stream, t.streams.deliver(stuck.webhookId));
    const nc = await connectNats(system.env.NATS_URL!, 'burst-test');
    try {
      const jsm = await jetstreamManager(nc);
      // The hanging webhook's first request times out; its lane parks with its second event.
      await callUnary(system.ingest, system.ingest.publishEvents, { events: events(stuck, 's', 2) }, testToken);
      const parked = async () => (await jsm.streams.getMessage(stream, { last_by_subj: t.subjects.park(stuck.workspaceId, stuck.webhookId) }).catch(() => null)) !== null;
      const deadline = Date.now() + 20_000;
      while (!(await parked())) {
        if (Date.now() > deadline) assert.fail('the hanging webhook was not parked');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const storedBefore = (await jsm.streams.info(stream)).state.last_seq;

      // The import: 25 calls of 20 events for the busy webhook; the quiet one gets an event now and then.
      const burst = events(busy, 'b', 500);
      const few = events(quiet, 'q', 5);
      for (let call = 0; call < 25; call++) {
        await callUnary(system.ingest, system.ingest.publishEvents, { events: burst.slice(call * 20, call * 20 + 20) }, testToken);
        if (call % 5 === 4) await callUnary(system.ingest, system.ingest.publishEvents, { events: [few[(call - 4) / 5]!] }, testToken);
      }
      await waitUntil(() => arrivals(busy).length >= 500 && arrivals(quiet).length >= 5, 60_000, () => `busy ${arrivals(busy).length}/500, quiet ${arrivals(quiet).length}/5`);

      assert.deepEqual(arrivals(busy), burst.map((e) => e.id), 'the busy webhook got every event once, in order');
      assert.deepEqual(arrivals(quiet), few.map((e) => e.id), 'the quiet webhook got its events');
      // Still parked: one request (the first, timed out), its retry due 30 s later, the second event waiting.
      assert.deepEqual(arrivals(stuck), ['s000']);
      assert.ok(await parked(), 'the hanging webhook is still parked');
      // The shard's stream stored the 505 tasks and nothing else: not one park copy of the busy webhook.
      const stored = (await jsm.streams.info(stream)).state.last_seq - storedBefore;
      assert.equal(stored, 505, 'messages stored in the shard during the burst (tasks plus park copies)');
      const dispatcherLogs = system.services.get('dispatcher')!.flatMap((service) => service.logs);
      assert.deepEqual(dispatcherLogs.filter((line) => line.webhookId === busy.webhookId && /parked/.test(String(line.msg))).map((line) => line.msg), []);
    } finally {
      await nc.close();
    }
  });
});

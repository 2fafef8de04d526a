// A customer's bulk import, the way it loads the system: a burst of 500 events for one workspace's one
// healthy webhook, published with PublishEvents, while another webhook of the same delivery shard hangs
// and a third, quiet one gets a few events. The busy webhook drains in its lane, in order, without one
// copy to the park; the hanging one is parked; the quiet one is not held behind either. Then a
// dispatcher is killed in the middle of a busy webhook's drain, and the test shows what that repeats:
// at most the one event in flight, right after itself, as the README's at-least-once row says.
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { DeliveryStatus, Plan } from '@webhooks/contracts';
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

  it('a dispatcher killed during a busy webhook\'s drain: the next owner sends again at most the event in flight, right after itself, and the log has each delivery once', async (t) => {
    const workspaceId = uniqueName('drain');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'Drain', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    const created = await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: 'crm', url: `${receiver.url}/drain`, eventTypes: ['contact.created'], headers: {} }, testToken);
    const hook: Hook = { workspaceId, webhookId: created.webhook!.id, path: '/hook/drain' };
    const count = 3_000;
    const backlog = events(hook, 'd', count).map((event, n) => ({ ...event, id: `d${String(n).padStart(4, '0')}` }));
    const expected = backlog.map((event) => event.id);

    // The backlog is queued while no dispatcher runs (the running one stops cleanly, giving up its shards).
    const [running] = system.services.get('dispatcher')!.filter((service) => service.running);
    assert.equal(await running!.stop(), 0);
    for (let call = 0; call < count / 500; call++) {
      await callUnary(system.ingest, system.ingest.publishEvents, { events: backlog.slice(call * 500, call * 500 + 500) }, testToken);
    }

    // One dispatcher drains it, and is killed with SIGKILL a third of the way through.
    const draining = await system.startService('dispatcher');
    await waitUntil(() => arrivals(hook).length >= count / 3, 60_000, () => `${arrivals(hook).length} delivered before the kill`);
    await draining.kill();
    const beforeKill = arrivals(hook);
    assert.ok(beforeKill.length < count * 0.9, `the kill came during the drain (${beforeKill.length} of ${count} delivered)`);

    // The next owner takes the shard once the dead one's lease has lapsed, and finishes the drain.
    await system.startService('dispatcher');
    await waitUntil(() => new Set(arrivals(hook)).size === count, 120_000, () => `${new Set(arrivals(hook)).size} of ${count} delivered after the kill`);
    const got = arrivals(hook);

    assert.deepEqual(got.slice(0, beforeKill.length), beforeKill);
    assert.deepEqual(withoutImmediateRepeats(got), expected, 'every event once, in order, apart from immediate repeats');
    const repeated = got.filter((id, i) => i > 0 && got[i - 1] === id);
    t.diagnostic(`${beforeKill.length} of ${count} delivered before the kill; sent again after it: ${repeated.join(', ') || 'none'}`);
    assert.ok(repeated.length <= 1, `repeated: ${repeated.join(', ')}`);
    // The only event sent twice is the one that was in flight when the dispatcher died: the last one it sent.
    if (repeated.length === 1) assert.equal(repeated[0], beforeKill[beforeKill.length - 1]);

    // The log: one succeeded delivery per event, with one attempt (a repeat whose record the dead
    // replica never stored is attempt 1 again; one whose record it stored is not sent again).
    const logged = await everyDelivery(workspaceId, count);
    assert.equal(logged.length, count);
    assert.deepEqual(logged.filter((delivery) => delivery.status !== DeliveryStatus.DELIVERY_STATUS_SUCCEEDED || delivery.attemptCount !== 1).map((delivery) => delivery.eventId), []);
    assert.deepEqual(new Set(logged.map((delivery) => delivery.eventId)), new Set(expected));
  });

  /** Every delivery of the workspace in the log, page by page, once there are `count`. */
  async function everyDelivery(workspaceId: string, count: number) {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const all = [];
      let pageToken = '';
      do {
        const page = await callUnary(system.deliveryLog, system.deliveryLog.listDeliveries, { workspaceId, webhookId: '', eventType: '', status: DeliveryStatus.DELIVERY_STATUS_UNSPECIFIED, pageSize: 100, pageToken }, testToken);
        all.push(...page.deliveries);
        pageToken = page.nextPageToken;
      } while (pageToken);
      if (all.length >= count || Date.now() > deadline) return all;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
});

/** The sequence with immediate repeats removed: an event in flight at a crash may arrive twice in a row. */
function withoutImmediateRepeats(ids: string[]): string[] {
  return ids.filter((id, i) => i === 0 || ids[i - 1] !== id);
}

// Idempotent ingest across a NATS restart: once a task is delivered its stream forgets the task's message
// id when the server restarts, so only the accepted-events bucket can recognise a retried event then. The
// services run on a private nats-server whose store survives the restart, as in production. The same
// system shows that IDEMPOTENCY_WINDOW is the one window every service configures.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebhooksClient } from '@webhooks/client';
import type { CreateWebhookResponse, PublishEventResponse, PublishEventsResponse } from '@webhooks/contracts';
import { connectNats, jetstreamManager, topology } from '@webhooks/messaging';
import { HttpReceiver, PrivateNatsServer, startSystem, testToken, type RunningSystem } from '@webhooks/testing';
import { contactCreated, waitUntil, workspaceWithWebhook } from './support.js';

const window = '7m'; // not the default 10m
const windowNanos = 7 * 60_000 * 1_000_000;

describe('idempotent ingest across a NATS restart', () => {
  let nats: PrivateNatsServer;
  let system: RunningSystem;
  let receiver: HttpReceiver;
  let client: WebhooksClient;

  before(async () => {
    nats = await PrivateNatsServer.start();
    receiver = await HttpReceiver.start();
    system = await startSystem({ NATS_URL: nats.url, IDEMPOTENCY_WINDOW: window });
    // The core product's client retries PublishEvent(s) on UNAVAILABLE, as the README tells callers to.
    client = new WebhooksClient({ subscriptionAddress: system.services.get('subscription')![0]!.address(), ingestAddress: system.services.get('event-ingest')![0]!.address(), token: testToken, maxAttempts: 60, retryBaseMs: 100, deadlineMs: 5_000 });
  });

  after(async () => {
    client?.close();
    await system?.stop();
    await receiver?.close();
    await nats?.remove();
  });

  /** Delivered means acked: the tasks are gone from the WorkQueue stream, and with them the ids its duplicate table would rebuild from after a restart. */
  async function tasksAcked(webhookId: string): Promise<void> {
    const stream = topology({ prefix: system.prefix }).streams.deliver(webhookId);
    const nc = await connectNats(nats.url, 'idempotency-test');
    try {
      const jsm = await jetstreamManager(nc);
      let stored = -1;
      for (let waited = 0; stored !== 0 && waited < 30_000; waited += 100) {
        stored = (await jsm.streams.info(stream)).state.messages;
        if (stored !== 0) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(stored, 0, `${stream} still holds undelivered tasks`);
    } finally {
      await nc.close();
    }
  }

  it('answers "duplicate" for events delivered before the restart, and delivers nothing again', async () => {
    const { workspaceId, webhookId } = await workspaceWithWebhook(system, receiver.url);
    const ids = Array.from({ length: 20 }, (_, i) => `idem_${String(i).padStart(2, '0')}`);
    for (const id of ids) {
      const first = await client.publishEvent({ event: contactCreated(id, workspaceId) });
      assert.deepEqual(first.result, { eventId: id, webhookIds: [webhookId], duplicate: false });
    }
    await receiver.waitForRequests(20, 30_000);
    await tasksAcked(webhookId);

    await nats.pause();
    await nats.resume();

    // Ten repeats in one PublishEvents call, ten one by one; the client retries while ingest reconnects.
    const batch = (await client.publishEvents({ events: ids.slice(0, 10).map((id) => contactCreated(id, workspaceId)) })) as PublishEventsResponse;
    const singles: PublishEventResponse[] = [];
    for (const id of ids.slice(10)) singles.push(await client.publishEvent({ event: contactCreated(id, workspaceId) }));
    const repeats = [...batch.results, ...singles.map((s) => s.result!)];
    assert.deepEqual(repeats, ids.map((eventId) => ({ eventId, webhookIds: [webhookId], duplicate: true })));

    // A later event travels the same queue: once it has arrived, a repeat would have arrived before it.
    await client.publishEvent({ event: contactCreated('idem_fence', workspaceId) });
    await receiver.waitForRequests(21, 30_000);
    const seen = receiver.requests.map((r) => JSON.parse(r.body).id as string);
    assert.deepEqual(seen, [...ids, 'idem_fence'], 'each event delivered once');
  });

  it('answers a duplicate with the webhooks of the first answer, not with webhooks created since', async () => {
    const path = `/first-answer`;
    const { workspaceId, webhookId } = await workspaceWithWebhook(system, `${receiver.url}${path}`);
    const first = await client.publishEvent({ event: contactCreated('idem_first', workspaceId) });
    assert.deepEqual(first.result!.webhookIds, [webhookId]);
    const later = (await client.createWebhook({ workspaceId, name: 'later', url: `${receiver.url}${path}/later`, eventTypes: ['contact.created'], headers: {} })) as CreateWebhookResponse;
    const laterId = later.webhook!.id;

    const repeated = await client.publishEvent({ event: contactCreated('idem_first', workspaceId) });
    assert.deepEqual(repeated.result, { eventId: 'idem_first', webhookIds: [webhookId], duplicate: true });

    const fence = await client.publishEvent({ event: contactCreated('idem_first_fence', workspaceId) });
    assert.deepEqual(new Set(fence.result!.webhookIds), new Set([webhookId, laterId]));
    const ofThisTest = () => receiver.requests.filter((r) => r.path.includes(path)).map((r) => `${r.path.endsWith('/later') ? 'later' : 'first'}:${JSON.parse(r.body).id as string}`);
    await waitUntil(() => ofThisTest().length >= 3, 30_000, () => `three deliveries, got ${ofThisTest().join(', ')}`);
    assert.deepEqual(ofThisTest().sort(), ['first:idem_first', 'first:idem_first_fence', 'later:idem_first_fence']);
  });

  it('configures IDEMPOTENCY_WINDOW from every service: the accepted bucket\'s TTL and every delivery stream\'s duplicate window', async () => {
    // The last service to start ensures the topology last: before, a dispatcher reset the window to 10m.
    await system.startService('dispatcher');
    const t = topology({ prefix: system.prefix });
    const nc = await connectNats(nats.url, 'idempotency-window-test');
    try {
      const jsm = await jetstreamManager(nc);
      const windows = await Promise.all(t.streams.deliverShards.map(async (name) => (await jsm.streams.info(name)).config.duplicate_window));
      assert.deepEqual(windows, t.streams.deliverShards.map(() => windowNanos));
      assert.equal((await jsm.streams.info(`KV_${t.buckets.accepted}`)).config.max_age, windowNanos);
    } finally {
      await nc.close();
    }
  });
});

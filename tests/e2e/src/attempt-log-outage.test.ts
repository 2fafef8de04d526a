// The attempt log (the ATTEMPTS stream) stops storing records for 20 s under load, then comes back with
// its data: a decided attempt keeps its decision. Nothing is sent twice because its record was slow, a
// failure is not counted more than once towards the retry limit, and every record reaches the log.
// The outage moves the stream to a subject nobody publishes to (publishes get "no stream"), so the
// records already stored stay, and the subscription service's consumer keeps its place.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeliveryStatus } from '@webhooks/contracts';
import { connectNats, jetstreamManager, topology } from '@webhooks/messaging';
import { HttpReceiver, startSystem, type RunningSystem } from '@webhooks/testing';
import { contactCreated, finalDeliveries, publish, waitUntil, workspaceWithWebhook } from './support.js';

const outageMs = 20_000;

describe('attempt log unavailable under load', () => {
  let system: RunningSystem;
  const receivers: HttpReceiver[] = [];

  before(async () => {
    // ack_wait far shorter than the outage: a task whose record is retried must be kept alive.
    system = await startSystem({ DELIVERY_ACK_WAIT: '4s', ATTEMPT_TIMEOUT: '1s', RETRY_DELAYS: '200ms,200ms,200ms', GIVE_UP_AFTER: '2m' });
  });

  after(async () => {
    await system?.stop();
    for (const receiver of receivers) await receiver.close();
  });

  it('sends each event once, counts each failure once, and logs every attempt after the outage', async () => {
    const healthy = await HttpReceiver.start();
    // Fails the first request of each event, answers 200 to the next: one real failure per event.
    const seen = new Set<string>();
    const flaky = await HttpReceiver.start((request, response) => {
      const id = (JSON.parse(request.body) as { id: string }).id;
      if (!seen.has(id)) {
        seen.add(id);
        response.statusCode = 500;
      }
      response.end();
    });
    receivers.push(healthy, flaky);
    const a = await workspaceWithWebhook(system, healthy.url);
    const b = await workspaceWithWebhook(system, flaky.url);
    const ids = Array.from({ length: 8 }, (_, i) => `o${i}`);
    // Ingest may answer NOT_FOUND for a moment while its routing mirror catches up with the new workspace.
    const publishOnceKnown = async (event: Parameters<typeof publish>[1]) => {
      for (let tries = 1; ; tries++) {
        try {
          return await publish(system, event);
        } catch (error) {
          if ((error as { code?: number }).code !== 5 || tries >= 50) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    };
    const send = async (from: number, to: number) => {
      for (const id of ids.slice(from, to)) {
        await publishOnceKnown(contactCreated(id, a.workspaceId));
        await publishOnceKnown(contactCreated(id, b.workspaceId));
      }
    };
    await send(0, 2);
    await waitUntil(() => healthy.requests.length >= 2 && flaky.requests.length >= 4, 15_000, 'deliveries before the outage');

    const t = topology({ prefix: system.prefix });
    const nc = await connectNats(system.env.NATS_URL!, 'attempt-log-outage');
    try {
      const jsm = await jetstreamManager(nc);
      const config = (await jsm.streams.info(t.streams.attempts)).config;
      await jsm.streams.update(t.streams.attempts, { ...config, subjects: [`${system.prefix}.parked.attempts.>`] });
      try {
        await send(2, ids.length);
        await new Promise((resolve) => setTimeout(resolve, outageMs));
      } finally {
        await jsm.streams.update(t.streams.attempts, { ...config, subjects: [t.subjects.attemptsAll] });
      }
    } finally {
      await nc.close();
    }

    const requestsFor = (receiver: HttpReceiver) => receiver.requests.map((r) => (JSON.parse(r.body) as { id: string }).id);
    const delivered = await finalDeliveries(system, a.workspaceId, a.webhookId, ids.length, 60_000);
    const flakyDelivered = await finalDeliveries(system, b.workspaceId, b.webhookId, ids.length, 60_000);
    assert.deepEqual(requestsFor(healthy), ids, 'the healthy endpoint got each event exactly once, in order');
    assert.deepEqual(requestsFor(flaky), ids.flatMap((id) => [id, id]), 'the flaky endpoint got each event twice: one failure, one success');
    for (const delivery of delivered) {
      assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED, `${delivery.eventId}: ${delivery.dropReason}`);
      assert.deepEqual(delivery.attempts.map((x) => [x.number, x.statusCode]), [[1, 200]], delivery.eventId);
    }
    for (const delivery of flakyDelivered) {
      assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED, `${delivery.eventId} dropped early: ${delivery.dropReason}`);
      assert.deepEqual(delivery.attempts.map((x) => [x.number, x.statusCode]), [[1, 500], [2, 200]], delivery.eventId);
    }
  });
});

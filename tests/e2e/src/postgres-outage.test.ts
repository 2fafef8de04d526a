// Delivery goes on while PostgreSQL is down; the attempt records wait in JetStream and are all in the log
// once it is back. The control plane runs on a private PostgreSQL cluster the test stops and starts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeliveryStatus, type ListDeliveriesResponse } from '@webhooks/contracts';
import { callUnary, HttpReceiver, PrivatePostgresServer, startSystem, testToken, type RunningSystem } from '@webhooks/testing';
import { contactCreated, publish, workspaceWithWebhook } from './support.js';

describe('PostgreSQL outage', () => {
  let postgres: PrivatePostgresServer;
  let system: RunningSystem;
  let receiver: HttpReceiver;

  before(async () => {
    postgres = await PrivatePostgresServer.start();
    receiver = await HttpReceiver.start();
    system = await startSystem({ DATABASE_URL: postgres.url });
  });

  after(async () => {
    await system?.stop();
    await receiver?.close();
    postgres?.remove();
  });

  it('keeps delivering while PostgreSQL is down and logs every attempt once it is back', async () => {
    const { workspaceId } = await workspaceWithWebhook(system, receiver.url);
    postgres.pause();
    const ids = Array.from({ length: 20 }, (_, i) => `pg_${i}`);
    for (const id of ids) await publish(system, contactCreated(id, workspaceId));
    const delivered = await receiver.waitForRequests(ids.length);
    assert.deepEqual(delivered.map((r) => JSON.parse(r.body).id), ids);
    const [subscription] = system.services.get('subscription')!;
    await subscription!.waitForLog((line) => line.msg === 'writing attempt records failed; they wait in JetStream');

    postgres.resume();
    let logged: ListDeliveriesResponse['deliveries'] = [];
    for (let i = 0; i < 150 && logged.length < ids.length; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const page = await callUnary<typeof system.deliveryLog, unknown, ListDeliveriesResponse>(system.deliveryLog, system.deliveryLog.listDeliveries, { workspaceId, webhookId: '', eventType: '', status: 0, pageSize: 100, pageToken: '' }, testToken).catch(() => ({ deliveries: [] as ListDeliveriesResponse['deliveries'] }));
      logged = page.deliveries.filter((d) => d.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    }
    assert.deepEqual(logged.map((d) => d.eventId).sort(), [...ids].sort());
    assert.ok(logged.every((d) => d.attemptCount === 1));
  });
});

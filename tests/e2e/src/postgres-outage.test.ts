// Delivery goes on while PostgreSQL is down; the attempt records wait in JetStream and are all in the log
// once it is back. The control plane runs on a private PostgreSQL cluster the test stops and starts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HttpReceiver, PrivatePostgresServer, startSystem, type RunningSystem } from '@webhooks/testing';
import { contactCreated, publish, succeededDeliveries, workspaceWithWebhook } from './support.js';

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
    const logged = await succeededDeliveries(system, workspaceId, ids.length);
    assert.deepEqual(logged.map((d) => d.eventId).sort(), [...ids].sort());
    assert.ok(logged.every((d) => d.attemptCount === 1));
  });
});

// A crash between the PostgreSQL commit and the routing-table write: the webhook exists in PostgreSQL
// but not in the table. The restarted control plane repairs the table, and events reach the webhook.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { Plan, SubscriptionServiceClient } from '@webhooks/contracts';
import { callUnary, HttpReceiver, insecure, PrivateNatsServer, startSystem, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';
import { contactCreated, publish } from './support.js';

describe('routing table repair after a crash between the two writes', () => {
  let nats: PrivateNatsServer;
  let system: RunningSystem;
  let receiver: HttpReceiver;

  before(async () => {
    nats = await PrivateNatsServer.start();
    receiver = await HttpReceiver.start();
    // Only the start-up reconcile runs during the test.
    system = await startSystem({ NATS_URL: nats.url, ROUTES_RECONCILE_INTERVAL: '1h' });
  });

  after(async () => {
    await system?.stop();
    await receiver?.close();
    await nats?.remove();
  });

  it('writes the missing route when the control plane starts again', async () => {
    const workspaceId = uniqueName('ws');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'Acme', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);

    // NATS goes away: the commit succeeds, the routing-table write does not.
    await nats.pause();
    const created = await callUnary(system.subscription, system.subscription.createWebhook, {
      workspaceId, name: 'hook', url: receiver.url, eventTypes: ['contact.created'], headers: {},
    }, testToken, 30_000);
    const [subscription] = system.services.get('subscription')!;
    await subscription!.waitForLog((line) => line.msg === 'routing table write failed; the reconciler will repair it');
    // ... and the control plane crashes before anything repairs it.
    await subscription!.kill();
    await nats.resume();

    const restarted = await system.startService('subscription');
    const repaired = await restarted.waitForLog((line) => line.msg === 'routing table repaired' && line.written === 1);
    // One line per pass says what it cost: nothing was deleted, nothing was newer than PostgreSQL.
    assert.equal(repaired.deleted, 0);
    assert.equal(repaired.skippedNewer, 0);
    assert.ok(Number(repaired.checked) >= 2, `checked ${String(repaired.checked)}`);
    assert.equal(typeof repaired.durationMs, 'number');
    const client = new SubscriptionServiceClient(restarted.address(), insecure);
    try {
      const fetched = await callUnary(client, client.getWebhook, { workspaceId, webhookId: created.webhook!.id }, testToken);
      assert.equal(fetched.webhook!.name, 'hook');
    } finally {
      client.close();
    }

    // Ingest and the dispatcher reconnected and follow the repaired table. Like any client after an
    // outage, the test retries UNAVAILABLE (publishing is idempotent by event id).
    let published: Awaited<ReturnType<typeof publish>> | undefined;
    for (let tries = 0; !published; tries++) {
      published = await publish(system, contactCreated('after_repair', workspaceId)).catch((error: { code?: number }) => {
        if (error.code !== status.UNAVAILABLE || tries > 50) throw error;
        return new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 200));
      });
    }
    assert.deepEqual(published.result!.webhookIds, [created.webhook!.id]);
    const [request] = await receiver.waitForRequests(1, 20_000);
    assert.equal(JSON.parse(request!.body).id, 'after_repair');
  });
});

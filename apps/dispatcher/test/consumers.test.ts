// Delivery loops are supervised, against real NATS: a handler that throws ends the webhook's loop; it
// is restarted, and the webhook's events are still all handled, in order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeliveryTask, Route } from '@webhooks/contracts';
import { ensureTopology, jetstream, JetStreamPublisher, RoutingTable, type Buckets, type JetStreamManager, type JsMsg } from '@webhooks/messaging';
import { createLogger } from '@webhooks/telemetry';
import { createTestTopology, uniqueName, type TestTopology } from '@webhooks/testing';
import { Suspensions } from '../src/breaker.js';
import { DeliveryConsumers } from '../src/consumers.js';

const logger = createLogger('consumers-test');

describe('supervised delivery loops on real NATS', () => {
  let test: TestTopology;
  let buckets: Buckets;
  let jsm: JetStreamManager;
  let routes: RoutingTable;
  let publisher: JetStreamPublisher;
  let consumers: DeliveryConsumers | undefined;

  before(async () => {
    test = await createTestTopology();
    ({ jsm, buckets } = await ensureTopology(test.nc, test.topology));
    routes = await RoutingTable.open(buckets.routes, (change) => consumers?.onRouteChange(change));
    publisher = new JetStreamPublisher(test.nc);
  });

  after(async () => {
    await consumers?.stop();
    routes?.stop();
    publisher?.close();
    await test?.remove();
  });

  it('restarts a loop that ended with an error, and delivers the later events in order', async () => {
    const t = test.topology;
    const workspaceId = uniqueName('ws');
    const webhookId = uniqueName('wh');
    const route: Route = { webhookId, workspaceId, url: 'https://example.com/h', eventTypes: ['contact.created'], headers: {}, active: true, secrets: [], version: 1, name: 'h', rateLimit: 0, auth: undefined };
    await buckets.routes.put(t.keys.webhook(workspaceId, webhookId), Route.encode(route).finish());
    await routes.sync();

    const handled: string[] = [];
    const downReports: number[] = [];
    let thrown = false;
    const handle = async (message: JsMsg) => {
      const task = DeliveryTask.decode(message.data);
      // A bug in the handler, once: the loop ends with this error.
      if (task.eventId === 'e3' && !thrown) {
        thrown = true;
        throw new Error('injected handler failure');
      }
      handled.push(task.eventId);
      message.ack();
      return true;
    };
    consumers = new DeliveryConsumers(jetstream(test.nc), jsm, t, routes, 5_000, handle, new Suspensions(), logger, (down) => downReports.push(down));
    await consumers.startAll();

    const ids = ['e1', 'e2', 'e3', 'e4', 'e5', 'e6'];
    for (const eventId of ids) {
      const task: DeliveryTask = { eventId, workspaceId, webhookId, eventType: 'contact.created', occurredAt: new Date(), body: Buffer.from('{}'), deliveryId: '', retryOfDeliveryId: '', acceptedAt: new Date() };
      await publisher.publish(t.subjects.deliver(workspaceId, webhookId), DeliveryTask.encode(task).finish());
    }
    const deadline = Date.now() + 20_000;
    while (handled.length < ids.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(thrown, true);
    assert.deepEqual(handled, ids, 'every event handled once, in order, after the restart');
    assert.deepEqual(downReports, [1, 0], 'readiness was told the loop was down, then up again');
  });
});

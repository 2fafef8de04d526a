// The delivery log through DeliveryLogService: every attempt recorded, filters and pagination, replay of
// a dropped delivery behind the webhook's queued events, test events, and tenancy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { DeliveryStatus, Plan, type Delivery } from '@webhooks/contracts';
import { exampleEvent } from '@webhooks/domain';
import { callUnary, expectStatus, HttpReceiver, startSystem, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';
import { contactCreated, publish } from './support.js';

describe('delivery log', () => {
  let system: RunningSystem;
  let flaky: HttpReceiver;
  let broken: HttpReceiver;
  const workspaceId = uniqueName('log');
  let flakyHook = '';
  let brokenHook = '';

  before(async () => {
    system = await startSystem({ RETRY_DELAYS: '50ms,50ms,50ms', GIVE_UP_AFTER: '1s', BREAKER_THRESHOLD: '1000' });
    // flaky: the first request of each event fails once; broken: always fails until fixed.
    const seen = new Set<string>();
    flaky = await HttpReceiver.start((req, res) => {
      const id = JSON.parse(req.body).id as string;
      res.statusCode = seen.has(id) ? 200 : 502;
      seen.add(id);
      res.end(res.statusCode === 200 ? 'thanks' : 'bad gateway');
    });
    broken = await HttpReceiver.start((_req, res) => {
      res.statusCode = 500;
      res.end('boom');
    });
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'Log', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    const create = async (name: string, url: string, eventTypes: string[]) =>
      (await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name, url, eventTypes, headers: { 'x-api-key': 'secret-value' } }, testToken)).webhook!.id;
    flakyHook = await create('flaky', flaky.url, ['contact.created', 'message.incoming']);
    brokenHook = await create('broken', broken.url, ['contact.created']);
    await publish(system, contactCreated('c1', workspaceId));
    await publish(system, exampleEvent('message.incoming', workspaceId));
    await publish(system, contactCreated('c2', workspaceId));
  });

  after(async () => {
    await system?.stop();
    await flaky?.close();
    await broken?.close();
  });

  const list = (filter: Record<string, unknown> = {}) =>
    callUnary(system.deliveryLog, system.deliveryLog.listDeliveries, { workspaceId, webhookId: '', eventType: '', status: 0, startTime: undefined, endTime: undefined, pageSize: 0, pageToken: '', ...filter }, testToken);

  async function settled(): Promise<Delivery[]> {
    // 3 events to flaky (each fails once, then succeeds) and 2 to broken (dropped after 4 attempts).
    for (let i = 0; i < 200; i++) {
      const { deliveries } = await list();
      const done = deliveries.filter((d) => d.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED || d.status === DeliveryStatus.DELIVERY_STATUS_DROPPED);
      if (done.length === 5) return deliveries;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the log did not settle: ${JSON.stringify((await list()).deliveries.map((d) => [d.eventId, d.status]))}`);
  }

  it('records every delivery and attempt, newest first, with filters and pages', async () => {
    const all = await settled();
    assert.equal(all.length, 5);
    const times = all.map((d) => d.createTime!.getTime());
    assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');

    const byWebhook = await list({ webhookId: brokenHook });
    assert.deepEqual(byWebhook.deliveries.map((d) => [d.eventId, d.status, d.dropReason, d.attemptCount]), [
      ['c2', DeliveryStatus.DELIVERY_STATUS_DROPPED, 'attempts exhausted after 4 attempts', 4],
      ['c1', DeliveryStatus.DELIVERY_STATUS_DROPPED, 'attempts exhausted after 4 attempts', 4],
    ]);
    assert.equal((await list({ eventType: 'message.incoming' })).deliveries.length, 1);
    assert.equal((await list({ status: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED })).deliveries.length, 3);
    assert.equal((await list({ startTime: new Date(Date.now() + 60_000) })).deliveries.length, 0);
    assert.equal((await list({ endTime: new Date(Date.now() + 60_000), startTime: new Date(Date.now() - 60_000) })).deliveries.length, 5);

    // Two at a time: every delivery exactly once.
    const paged: string[] = [];
    let token = '';
    do {
      const page = await list({ pageSize: 2, pageToken: token });
      paged.push(...page.deliveries.map((d) => d.id));
      token = page.nextPageToken;
    } while (token);
    assert.deepEqual(paged, all.map((d) => d.id));

    await expectStatus(list({ eventType: 'contact.deleted' }), status.INVALID_ARGUMENT);
    await expectStatus(list({ pageToken: 'garbage' }), status.INVALID_ARGUMENT);
  });

  it('shows each attempt with time, duration, status or reason, excerpt and headers without secrets', async () => {
    const [delivery] = (await list({ webhookId: flakyHook, eventType: 'contact.created' })).deliveries.filter((d) => d.eventId === 'c1');
    const { delivery: full } = await callUnary(system.deliveryLog, system.deliveryLog.getDelivery, { workspaceId, deliveryId: delivery!.id }, testToken);
    assert.deepEqual(full!.attempts.map((a) => [a.number, a.statusCode, a.failureReason, a.responseExcerpt]), [
      [1, 502, 'status 502', 'bad gateway'],
      [2, 200, '', 'thanks'],
    ]);
    const headers = full!.attempts[0]!.requestHeaders;
    assert.equal(headers['x-api-key'], '[redacted]');
    assert.match(headers['webhook-signature']!, /^v1,/);
    assert.ok(full!.attempts[0]!.startTime! <= full!.attempts[1]!.startTime!);
    assert.ok(full!.attempts.every((a) => a.durationMs >= 0));
  });

  it('sends a dropped delivery again as a new delivery, behind the events already queued', async () => {
    const [dropped] = (await list({ webhookId: brokenHook, eventType: 'contact.created' })).deliveries.filter((d) => d.eventId === 'c1');
    broken.respondWith((_req, res) => res.end('fixed'));
    const before = broken.requests.length;
    await publish(system, contactCreated('c3', workspaceId));
    const { delivery: retried } = await callUnary(system.deliveryLog, system.deliveryLog.retryDelivery, { workspaceId, deliveryId: dropped!.id }, testToken);
    assert.equal(retried!.retryOfDeliveryId, dropped!.id);
    assert.notEqual(retried!.id, dropped!.id);
    // Pending when answered, unless the dispatcher was faster than the answer.
    assert.notEqual(retried!.status, DeliveryStatus.DELIVERY_STATUS_DROPPED);
    const requests = (await broken.waitForRequests(before + 2)).slice(before);
    assert.deepEqual(requests.map((r) => JSON.parse(r.body).id), ['c3', 'c1']);

    for (let i = 0; i < 100; i++) {
      const { delivery } = await callUnary(system.deliveryLog, system.deliveryLog.getDelivery, { workspaceId, deliveryId: retried!.id }, testToken);
      if (delivery!.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED) break;
      await new Promise((r) => setTimeout(r, 100));
      if (i === 99) assert.fail('the retried delivery never succeeded in the log');
    }
    const message = await expectStatus(callUnary(system.deliveryLog, system.deliveryLog.retryDelivery, { workspaceId, deliveryId: retried!.id }, testToken), status.FAILED_PRECONDITION);
    assert.match(message, /only dropped deliveries can be retried/);
  });

  it('sends a test event of a chosen type to one webhook and logs it', async () => {
    const before = flaky.requests.length;
    const sent = await callUnary(system.deliveryLog, system.deliveryLog.sendTestEvent, { workspaceId, webhookId: flakyHook, eventType: 'conversation.closed' }, testToken);
    assert.match(sent.eventId, /^evt_test_/);
    const requests = await flaky.waitForRequests(before + 2);
    const body = JSON.parse(requests.at(-1)!.body);
    assert.equal(body.type, 'conversation.closed');
    assert.equal(body.id, sent.eventId);
    assert.equal((await list({ eventType: 'conversation.closed' })).deliveries[0]!.id, sent.delivery!.id);
    await expectStatus(callUnary(system.deliveryLog, system.deliveryLog.sendTestEvent, { workspaceId, webhookId: flakyHook, eventType: 'nope' }, testToken), status.INVALID_ARGUMENT);
  });

  it("keeps each workspace's log to itself", async () => {
    const other = uniqueName('other');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: other, name: 'O', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    const [mine] = (await list()).deliveries;
    await expectStatus(callUnary(system.deliveryLog, system.deliveryLog.getDelivery, { workspaceId: other, deliveryId: mine!.id }, testToken), status.NOT_FOUND);
    await expectStatus(callUnary(system.deliveryLog, system.deliveryLog.retryDelivery, { workspaceId: other, deliveryId: mine!.id }, testToken), status.NOT_FOUND);
    await expectStatus(callUnary(system.deliveryLog, system.deliveryLog.sendTestEvent, { workspaceId: other, webhookId: flakyHook, eventType: 'contact.created' }, testToken), status.NOT_FOUND);
    const theirs = await callUnary(system.deliveryLog, system.deliveryLog.listDeliveries, { workspaceId: other, webhookId: flakyHook, eventType: '', status: 0, pageSize: 0, pageToken: '' }, testToken);
    assert.equal(theirs.deliveries.length, 0);
  });
});

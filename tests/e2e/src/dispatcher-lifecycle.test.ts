// Disabling or deleting a webhook stops its deliveries at once; events still queued for it are dropped
// and recorded, including one that is waiting for a retry. Re-activation delivers new events again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AttemptDecision } from '@webhooks/contracts';
import { attemptRecords, callUnary, HttpReceiver, startSystem, testToken, type RunningSystem } from '@webhooks/testing';
import { connectNats, jetstreamManager, topology } from '@webhooks/messaging';
import { contactCreated, publish, workspaceWithWebhook } from './support.js';

describe('disabled and deleted webhooks', () => {
  let system: RunningSystem;
  const receivers: HttpReceiver[] = [];

  before(async () => {
    // Retries far apart: a drop that arrives before the next retry was not caused by the schedule.
    system = await startSystem({ RETRY_DELAYS: '60s,60s,60s', GIVE_UP_AFTER: '5m' });
  });

  after(async () => {
    await system?.stop();
    for (const receiver of receivers) await receiver.close();
  });

  async function failingEndpoint(): Promise<HttpReceiver> {
    const receiver = await HttpReceiver.start((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    receivers.push(receiver);
    return receiver;
  }

  it('drops the queued events of a deactivated webhook at once, and delivers again after activation', async () => {
    const endpoint = await failingEndpoint();
    const { workspaceId, webhookId } = await workspaceWithWebhook(system, endpoint.url);
    for (const id of ['q1', 'q2', 'q3']) await publish(system, contactCreated(id, workspaceId));
    await endpoint.waitForRequests(1); // q1 failed and waits 60 s for its retry; q2 and q3 wait behind it.

    await callUnary(system.subscription, system.subscription.deactivateWebhook, { workspaceId, webhookId }, testToken);
    const records = await attemptRecords(system.prefix, workspaceId, webhookId, 4, 15_000);
    const drops = records.filter((r) => r.decision === AttemptDecision.ATTEMPT_DECISION_DROPPED);
    assert.deepEqual(drops.map((r) => [r.eventId, r.dropReason, r.attemptNumber]), [
      ['q1', 'webhook disabled', 0],
      ['q2', 'webhook disabled', 0],
      ['q3', 'webhook disabled', 0],
    ]);
    assert.equal(endpoint.requests.length, 1);

    // Events published while disabled go nowhere; after activation new events are delivered.
    const whileDisabled = await publish(system, contactCreated('q4', workspaceId));
    assert.deepEqual(whileDisabled.result!.webhookIds, []);
    endpoint.respondWith((_req, res) => res.end('ok'));
    await callUnary(system.subscription, system.subscription.activateWebhook, { workspaceId, webhookId }, testToken);
    await publish(system, contactCreated('q5', workspaceId));
    const requests = await endpoint.waitForRequests(2);
    assert.deepEqual(requests.map((r) => JSON.parse(r.body).id), ['q1', 'q5']);
  });

  it('drops the queued events of a deleted webhook, parked while it retried, and leaves nothing behind', async () => {
    const endpoint = await failingEndpoint();
    const { workspaceId, webhookId } = await workspaceWithWebhook(system, endpoint.url);
    for (const id of ['d1', 'd2']) await publish(system, contactCreated(id, workspaceId));
    await endpoint.waitForRequests(1);

    await callUnary(system.subscription, system.subscription.deleteWebhook, { workspaceId, webhookId }, testToken);
    const records = await attemptRecords(system.prefix, workspaceId, webhookId, 3, 15_000);
    assert.deepEqual(
      records.filter((r) => r.decision === AttemptDecision.ATTEMPT_DECISION_DROPPED).map((r) => [r.eventId, r.dropReason]),
      [['d1', 'webhook deleted'], ['d2', 'webhook deleted']],
    );

    const t = topology({ prefix: system.prefix });
    const nc = await connectNats(system.env.NATS_URL!, 'lifecycle-test');
    try {
      const jsm = await jetstreamManager(nc);
      const consumers: string[] = [];
      for await (const info of jsm.consumers.list(t.streams.deliver(webhookId))) consumers.push(info.name);
      assert.deepEqual(consumers.filter((name) => name !== t.consumers.shard(t.streams.deliverShards.indexOf(t.streams.deliver(webhookId)))), [], 'a consumer other than the shard consumer');
      for (const subject of [t.subjects.deliver(workspaceId, webhookId), t.subjects.park(workspaceId, webhookId)]) {
        const left = await jsm.streams.getMessage(t.streams.deliver(webhookId), { last_by_subj: subject }).catch(() => null);
        assert.equal(left, null, `tasks of the deleted webhook are still queued on ${subject}`);
      }
    } finally {
      await nc.close();
    }
  });
});

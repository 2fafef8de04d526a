// The NATS server restarts in the middle of a load: every accepted event is still delivered at least
// once, in order per webhook, and every delivery reaches the log. The services run on a private
// nats-server with its own store folder, which the test stops and starts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebhooksClient } from '@webhooks/client';
import { Plan } from '@webhooks/contracts';
import { HttpReceiver, PrivateNatsServer, startSystem, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';
import { contactCreated, succeededDeliveries } from './support.js';

describe('NATS restart under load', () => {
  let nats: PrivateNatsServer;
  let system: RunningSystem;
  let receiver: HttpReceiver;
  let client: WebhooksClient;

  before(async () => {
    nats = await PrivateNatsServer.start();
    receiver = await HttpReceiver.start();
    system = await startSystem({ NATS_URL: nats.url, DELIVERY_ACK_WAIT: '3s', ATTEMPT_TIMEOUT: '1s', RETRY_DELAYS: '200ms,200ms,200ms', GIVE_UP_AFTER: '10s' });
    // The core product's client: PublishEvent is retried on UNAVAILABLE, which the outage produces.
    client = new WebhooksClient({ subscriptionAddress: system.services.get('subscription')![0]!.address(), ingestAddress: system.services.get('event-ingest')![0]!.address(), token: testToken, maxAttempts: 60, retryBaseMs: 100, deadlineMs: 5_000 });
  });

  after(async () => {
    client?.close();
    await system?.stop();
    await receiver?.close();
    await nats?.remove();
  });

  it('delivers every accepted event in order per webhook and logs it, across the restart', async () => {
    const webhooks = 10;
    const perWebhook = 30;
    const targets: { workspaceId: string; path: string }[] = [];
    for (let i = 0; i < webhooks; i++) {
      const workspaceId = uniqueName(`n${i}`);
      await client.upsertWorkspace({ workspace: { id: workspaceId, name: 'n', plan: Plan.PLAN_ADVANCED, notificationEmails: [], createTime: undefined, updateTime: undefined } });
      await client.createWebhook({ workspaceId, name: 'h', url: `${receiver.url}/${i}`, eventTypes: ['contact.created'], headers: {} });
      targets.push({ workspaceId, path: `/hook/${i}` });
    }

    const accepted = new Map<string, string[]>();
    const load = Promise.all(
      targets.map(async (target, i) => {
        const ids: string[] = [];
        for (let n = 0; n < perWebhook; n++) {
          const id = `w${i}_e${String(n).padStart(3, '0')}`;
          await client.publishEvent({ event: contactCreated(id, target.workspaceId) });
          ids.push(id);
          await new Promise((r) => setTimeout(r, 20));
        }
        accepted.set(target.path, ids);
      }),
    );
    await new Promise((r) => setTimeout(r, 250));
    await nats.pause();
    await new Promise((r) => setTimeout(r, 1_500));
    await nats.resume();
    await load;

    const total = webhooks * perWebhook;
    const deadline = Date.now() + 60_000;
    const distinct = () => new Set(receiver.requests.map((r) => `${r.path}|${JSON.parse(r.body).id}`)).size;
    while (distinct() < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.equal(distinct(), total, 'not every accepted event was delivered');

    for (const target of targets) {
      const seen = receiver.requests.filter((r) => r.path === target.path).map((r) => JSON.parse(r.body).id as string);
      const withoutRepeats = seen.filter((id, i) => i === 0 || seen[i - 1] !== id);
      assert.deepEqual(withoutRepeats, accepted.get(target.path), `order at ${target.path}`);
    }

    for (const target of targets) {
      assert.equal((await succeededDeliveries(system, target.workspaceId, perWebhook)).length, perWebhook, `deliveries logged for ${target.workspaceId}`);
    }
  });
});

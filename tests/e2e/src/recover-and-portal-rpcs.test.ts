// The RPCs the webhooks portal builds on, against the running services: RecoverDeliveries (also as the
// CLI's `recover`), GetWebhookStats, GetBreakerState and CreatePortalSession, whose token is no bearer token.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import {
  CreateWebhookRequest, DeliveryStatus, Plan, type Delivery,
} from '@webhooks/contracts';
import { verifyPortalSession, portalSessionKey } from '@webhooks/domain';
import { callUnary, expectStatus, HttpReceiver, startSystem, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';
import { contactCreated, publish } from './support.js';

const cliPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'apps', 'cli', 'dist', 'main.js');
const sessionKey = 'a-portal-session-key-for-the-tests-only';
const scopedToken = 'scoped-token-0123456789';

describe('recover, stats, breaker state and portal sessions', () => {
  let system: RunningSystem;
  let endpoint: HttpReceiver;
  const workspaceId = uniqueName('rec');
  const otherWorkspace = uniqueName('other');
  let webhookId = '';

  before(async () => {
    system = await startSystem({
      RETRY_DELAYS: '50ms,50ms,50ms', GIVE_UP_AFTER: '1s', BREAKER_THRESHOLD: '1000',
      PORTAL_SESSION_KEY: sessionKey, PORTAL_URL: 'https://portal.example.com/', API_TOKENS: `${testToken},${scopedToken}:${otherWorkspace}`,
    });
    endpoint = await HttpReceiver.start((_req, res) => {
      res.statusCode = 500;
      res.end('down');
    });
    for (const id of [workspaceId, otherWorkspace]) {
      await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id, name: id, plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    }
    webhookId = (await callUnary(system.subscription, system.subscription.createWebhook, CreateWebhookRequest.fromPartial({ workspaceId, name: 'hook', url: endpoint.url, eventTypes: ['contact.created'] }), testToken)).webhook!.id;
  });

  after(async () => {
    await system?.stop();
    await endpoint?.close();
  });

  const list = (status = DeliveryStatus.DELIVERY_STATUS_UNSPECIFIED) =>
    callUnary(system.deliveryLog, system.deliveryLog.listDeliveries, { workspaceId, webhookId: '', eventType: '', status, pageSize: 100, pageToken: '' }, testToken);

  async function dropped(count: number): Promise<Delivery[]> {
    for (let i = 0; i < 300; i++) {
      const { deliveries } = await list(DeliveryStatus.DELIVERY_STATUS_DROPPED);
      if (deliveries.length >= count) return deliveries;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`fewer than ${count} deliveries were dropped`);
  }

  function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const env = { PATH: process.env.PATH ?? '', WEBHOOKS_SUBSCRIPTION: system.services.get('subscription')![0]!.address(), WEBHOOKS_TOKEN: testToken };
    return new Promise((resolve) => execFile(process.execPath, [cliPath, ...args], { env }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr })));
  }

  it('recovers the dropped deliveries since a time, oldest first, each once; the CLI too', async () => {
    await publish(system, contactCreated('early', workspaceId));
    await dropped(1);
    const since = new Date();
    for (const id of ['r1', 'r2', 'r3']) await publish(system, contactCreated(id, workspaceId));
    await dropped(4);
    endpoint.respondWith((_req, res) => res.end('ok'));
    const before = endpoint.requests.length;

    const recovered = await callUnary(system.deliveryLog, system.deliveryLog.recoverDeliveries, { workspaceId, webhookId, since }, testToken);
    assert.equal(recovered.queuedCount, 3);
    assert.deepEqual(recovered.deliveries.map((d) => d.eventId), ['r1', 'r2', 'r3']);
    const arrived = (await endpoint.waitForRequests(before + 3)).slice(before);
    assert.deepEqual(arrived.map((r) => JSON.parse(r.body).id), ['r1', 'r2', 'r3']);

    // Already sent again: a second recovery finds nothing new.
    const again = await callUnary(system.deliveryLog, system.deliveryLog.recoverDeliveries, { workspaceId, webhookId, since }, testToken);
    assert.equal(again.queuedCount, 0);

    const fromCli = await cli('recover', workspaceId, webhookId, '--since', '1h');
    assert.equal(fromCli.code, 0, fromCli.stderr);
    assert.match(fromCli.stdout, /queued 1 dropped deliveries again/);
    await endpoint.waitForRequests(before + 4);
    assert.equal(JSON.parse(endpoint.requests.at(-1)!.body).id, 'early');

    assert.equal((await cli('recover', workspaceId, webhookId)).code, 2);
    assert.equal((await cli('recover', workspaceId, webhookId, '--since', 'yesterday-ish')).code, 2);
    await expectStatus(callUnary(system.deliveryLog, system.deliveryLog.recoverDeliveries, { workspaceId, webhookId, since: undefined }, testToken), status.INVALID_ARGUMENT);
    await expectStatus(callUnary(system.deliveryLog, system.deliveryLog.recoverDeliveries, { workspaceId, webhookId, since }, scopedToken), status.PERMISSION_DENIED);
  });

  it("aggregates a webhook's attempts per hour with latency percentiles", async () => {
    const { hours } = await callUnary(system.deliveryLog, system.deliveryLog.getWebhookStats, { workspaceId, webhookId }, testToken);
    assert.equal(hours.length, 24);
    const current = hours.at(-1)!;
    assert.ok(current.hourStart!.getTime() <= Date.now() && Date.now() - current.hourStart!.getTime() < 3_600_000);
    // 4 dropped deliveries of 4 attempts each, then 4 successes (the last may still be being recorded).
    const totals = hours.reduce((sum, h) => ({ succeeded: sum.succeeded + h.succeeded, failed: sum.failed + h.failed }), { succeeded: 0, failed: 0 });
    assert.equal(totals.failed, 16);
    assert.ok(totals.succeeded >= 3);
    assert.ok(hours.every((h) => h.p95Ms >= h.p50Ms));
    await expectStatus(callUnary(system.deliveryLog, system.deliveryLog.getWebhookStats, { workspaceId: otherWorkspace, webhookId }, testToken), status.NOT_FOUND);
  });

  it("reports the workspace's breaker as the dispatchers keep it", async () => {
    const state = await callUnary(system.subscription, system.subscription.getBreakerState, { workspaceId }, testToken);
    assert.equal(state.threshold, 1000);
    assert.equal(state.window!.seconds, 1800);
    assert.ok(state.failureCount >= 16, `failure count ${state.failureCount}`);
    const quiet = await callUnary(system.subscription, system.subscription.getBreakerState, { workspaceId: otherWorkspace }, testToken);
    assert.equal(quiet.failureCount, 0);
  });

  it('issues portal links scoped to one workspace whose token is not a bearer token', async () => {
    const session = await callUnary(system.subscription, system.subscription.createPortalSession, { workspaceId, ttl: { seconds: 600, nanos: 0 } }, testToken);
    assert.equal(session.url, `https://portal.example.com/#token=${session.token}`);
    const verified = verifyPortalSession(portalSessionKey(sessionKey), session.token, new Date());
    assert.equal(verified.workspaceId, workspaceId);
    assert.ok(Math.abs(session.expireTime!.getTime() - Date.now() - 600_000) < 60_000);
    const message = await expectStatus(callUnary(system.subscription, system.subscription.getWorkspace, { workspaceId }, session.token), status.UNAUTHENTICATED);
    assert.match(message, /not valid/);
    await expectStatus(callUnary(system.subscription, system.subscription.createPortalSession, { workspaceId, ttl: undefined }, scopedToken), status.PERMISSION_DENIED);
    await expectStatus(callUnary(system.subscription, system.subscription.createPortalSession, { workspaceId, ttl: { seconds: 3 * 86_400, nanos: 0 } }, testToken), status.INVALID_ARGUMENT);
    await expectStatus(callUnary(system.subscription, system.subscription.createPortalSession, { workspaceId: uniqueName('none'), ttl: undefined }, testToken), status.NOT_FOUND);
  });
});

// The workspace failure breaker end to end, with two dispatcher replicas, a real SMTP server and
// mailparser: one failing webhook crosses the (scaled) threshold and is disabled, the healthy one keeps
// delivering, exactly one email names what happened, and ActivateWebhook brings deliveries back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DisabledReason, Plan, WebhookStatus } from '@webhooks/contracts';
import { attemptRecords, breakerTrips, callUnary, HttpReceiver, SmtpSink, startSystem, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';
import { contactCreated, publish } from './support.js';

describe('failure breaker and disable notice', () => {
  let system: RunningSystem;
  let smtp: SmtpSink;
  const receivers: HttpReceiver[] = [];

  before(async () => {
    smtp = await SmtpSink.start();
    system = await startSystem({
      BREAKER_THRESHOLD: '5', BREAKER_WINDOW: '1m',
      RETRY_DELAYS: '50ms,50ms,50ms', GIVE_UP_AFTER: '1s',
      SMTP_URL: smtp.url, NOTICE_RETRY_BASE: '200ms', NOTICE_RETRY_MAX: '1s',
    });
    // A second dispatcher replica: failures from both count together.
    await system.startService('dispatcher');
  });

  after(async () => {
    await system?.stop();
    await smtp?.pause();
    for (const receiver of receivers) await receiver.close();
  });

  async function setUp(name: string) {
    const failing = await HttpReceiver.start((_req, res) => {
      res.statusCode = 503;
      res.end('down for maintenance');
    });
    const healthy = await HttpReceiver.start();
    receivers.push(failing, healthy);
    const workspaceId = uniqueName('ws');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name, plan: Plan.PLAN_ADVANCED, notificationEmails: ['ops@acme.example', 'cto@acme.example'] } }, testToken);
    const create = (hookName: string, url: string) =>
      callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: hookName, url, eventTypes: ['contact.created'], headers: {} }, testToken);
    const failingHook = (await create('CRM sync', failing.url)).webhook!;
    const healthyHook = (await create('Analytics', healthy.url)).webhook!;
    return { workspaceId, failing, healthy, failingHook, healthyHook };
  }

  it('disables the failing webhook, keeps the healthy one, sends one email, and activates again', async () => {
    const { workspaceId, failing, healthy, failingHook, healthyHook } = await setUp('Acme Support');
    const before = smtp.messages.length;
    // Each event fails 4 times at the failing endpoint: the 6th failure crosses the threshold of 5.
    for (const id of ['e1', 'e2', 'e3']) await publish(system, contactCreated(id, workspaceId));

    const [mail] = (await smtp.waitForMessages(before + 1)).slice(before);
    const get = (webhookId: string) => callUnary(system.subscription, system.subscription.getWebhook, { workspaceId, webhookId }, testToken);
    let disabled = (await get(failingHook.id)).webhook!;
    for (let i = 0; i < 50 && disabled.status !== WebhookStatus.WEBHOOK_STATUS_DISABLED; i++) {
      await new Promise((r) => setTimeout(r, 100));
      disabled = (await get(failingHook.id)).webhook!;
    }
    assert.equal(disabled.status, WebhookStatus.WEBHOOK_STATUS_DISABLED);
    assert.equal(disabled.disabled!.reason, DisabledReason.DISABLED_REASON_FAILURE_THRESHOLD);
    assert.match(disabled.disabled!.detail, /^automatic: \d+ failed attempts in 1 minute$/);
    assert.match(disabled.disabled!.lastError, /status 503/);
    assert.equal((await get(healthyHook.id)).webhook!.status, WebhookStatus.WEBHOOK_STATUS_ACTIVE);

    // The email: recipients, subject, both bodies, the way back, a Message-ID from the trip.
    const trips = await breakerTrips(system.prefix, workspaceId, 1);
    assert.equal(trips.length, 1, 'exactly one trip');
    // The webhook's attempts were made by the replica that owns its shard (ownership.ts), and counted in
    // the window the replicas share; both replicas run and one trip came of it.
    const dispatchers = system.services.get('dispatcher')!;
    assert.equal(dispatchers.filter((d) => d.running).length, 2);
    assert.ok(dispatchers.some((d) => d.logs.some((l) => l.msg === 'attempt failed, will retry' && l.workspaceId === workspaceId)), 'no replica saw a failure');
    assert.deepEqual(mail!.to && (Array.isArray(mail!.to) ? mail!.to : [mail!.to]).flatMap((a) => a.value.map((v) => v.address)), ['ops@acme.example', 'cto@acme.example']);
    assert.match(mail!.subject ?? '', /A webhook was disabled in Acme Support: \d+ failed attempts in 1 minute/);
    assert.equal(mail!.messageId, `<trip-${trips[0]!.tripId}@webhook-platform>`);
    for (const body of [mail!.text ?? '', String(mail!.html)]) {
      assert.match(body, /CRM sync/);
      assert.ok(body.includes(failing.url), 'the URL is named');
      assert.match(body, /status 503/);
      assert.match(body, /Settings &gt; Integrations &gt; Webhooks|Settings > Integrations > Webhooks/);
      assert.match(body, /ActivateWebhook/);
    }
    assert.doesNotMatch(mail!.text ?? '', /Analytics/);

    // The healthy webhook keeps delivering; the disabled one gets nothing new.
    const afterTrip = await publish(system, contactCreated('e4', workspaceId));
    assert.deepEqual(afterTrip.result!.webhookIds, [healthyHook.id]);
    await healthy.waitForRequests(4);
    assert.deepEqual(healthy.requests.map((r) => JSON.parse(r.body).id), ['e1', 'e2', 'e3', 'e4']);

    // Activation brings deliveries back, and old failures do not trip it again.
    failing.respondWith((_req, res) => res.end('ok'));
    await callUnary(system.subscription, system.subscription.activateWebhook, { workspaceId, webhookId: failingHook.id }, testToken);
    // Counted before publishing: the delivery may arrive before the publish call returns.
    const requestsBefore = failing.requests.length;
    const reactivated = await publish(system, contactCreated('e5', workspaceId));
    assert.deepEqual([...reactivated.result!.webhookIds].sort(), [failingHook.id, healthyHook.id].sort());
    const seen = await failing.waitForRequests(requestsBefore + 1);
    assert.equal(JSON.parse(seen.at(-1)!.body).id, 'e5');
    assert.equal(smtp.messages.length, before + 1, 'exactly one email');
    assert.equal((await breakerTrips(system.prefix, workspaceId, 1)).length, 1);
  });

  it('logs and skips the notice of a workspace without notification addresses', async () => {
    const { workspaceId } = await setUp('Quiet Co');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'Quiet Co', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    const before = smtp.messages.length;
    for (const id of ['n1', 'n2']) await publish(system, contactCreated(id, workspaceId));
    const [notifier] = system.services.get('notifier')!;
    await notifier!.waitForLog((line) => line.msg === 'disable notice not sent: the workspace has no notification addresses' && line.workspaceId === workspaceId, 20_000);
    assert.equal(smtp.messages.length, before);
  });

  it('sends exactly one email once the SMTP server is back', async () => {
    await smtp.pause();
    const { workspaceId } = await setUp('Beta Shop');
    const before = smtp.messages.length;
    for (const id of ['b1', 'b2']) await publish(system, contactCreated(id, workspaceId));
    // The notifier keeps failing to connect while the trip waits in JetStream.
    const [notifier] = system.services.get('notifier')!;
    await notifier!.waitForLog((line) => line.msg === 'disable notice not sent yet; will retry' && line.workspaceId === workspaceId, 20_000);
    await smtp.resume();
    await smtp.waitForMessages(before + 1);
    // Let a few more retry periods pass: no second email.
    await new Promise((r) => setTimeout(r, 1_500));
    const mails = smtp.messages.slice(before);
    assert.equal(mails.length, 1);
    assert.match(mails[0]!.subject ?? '', /Beta Shop/);
  });
});

describe('a trip while the control plane is down', () => {
  let system: RunningSystem;

  before(async () => {
    system = await startSystem({ BREAKER_THRESHOLD: '2', RETRY_DELAYS: '50ms,50ms,50ms', GIVE_UP_AFTER: '1s' });
  });

  after(async () => {
    await system?.stop();
  });

  it('stops the dispatcher delivering to the tripped webhook at once, before the routing table changes', async () => {
    const failing = await HttpReceiver.start((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    try {
      const workspaceId = uniqueName('down');
      await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'D', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
      const created = await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: 'x', url: failing.url, eventTypes: ['contact.created'], headers: {} }, testToken);
      // Without the control plane nothing can disable the webhook in the routing table.
      await system.services.get('subscription')![0]!.stop();
      for (const id of ['s1', 's2', 's3']) await publish(system, contactCreated(id, workspaceId));
      // The 3rd failure (of s1) trips the breaker; s1 stops being retried, s2 and s3 are never sent.
      const records = await attemptRecords(system.prefix, workspaceId, created.webhook!.id, 6, 15_000);
      const drops = records.filter((r) => r.dropReason === 'webhook disabled').map((r) => r.eventId);
      assert.deepEqual(drops, ['s1', 's2', 's3']);
      assert.deepEqual([...new Set(failing.requests.map((r) => JSON.parse(r.body).id))], ['s1']);
      assert.equal(failing.requests.length, 3);
    } finally {
      await failing.close();
    }
  });
});

describe('a disable notice that cannot be sent in time', () => {
  let system: RunningSystem;

  before(async () => {
    // No SMTP server listens there, and a notice may be at most 1 ms old: it is given up at once.
    system = await startSystem({ BREAKER_THRESHOLD: '2', RETRY_DELAYS: '50ms,50ms,50ms', GIVE_UP_AFTER: '1s', SMTP_URL: 'smtp://127.0.0.1:1', NOTICE_MAX_AGE: '1ms' });
  });

  after(async () => {
    await system?.stop();
  });

  it('is given up and logged as an error', async () => {
    const failing = await HttpReceiver.start((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    try {
      const workspaceId = uniqueName('late');
      await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'Late', plan: Plan.PLAN_ADVANCED, notificationEmails: ['ops@late.example'] } }, testToken);
      await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: 'x', url: failing.url, eventTypes: ['contact.created'], headers: {} }, testToken);
      await publish(system, contactCreated('l1', workspaceId));
      const [notifier] = system.services.get('notifier')!;
      const line = await notifier!.waitForLog((l) => l.msg === 'disable notice given up: it could not be sent in time' && l.workspaceId === workspaceId, 20_000);
      assert.equal(line.level, 'error');
    } finally {
      await failing.close();
    }
  });
});

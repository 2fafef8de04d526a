// At-least-once and per-webhook order through dispatcher crashes, one disable notice (not two) for a
// breaker that trips while they happen, and isolation from an endpoint that never answers. The schedule
// is scaled down; assertions are about completeness and order, not timing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeliveryStatus, Plan, type Event } from '@webhooks/contracts';
import { breakerTrips, callUnary, HttpReceiver, SmtpSink, startSystem, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';
import { contactCreated, finalDeliveries, succeededDeliveries, waitUntil } from './support.js';

/** Per path, the event ids in arrival order. */
function arrivalsByPath(receiver: HttpReceiver): Map<string, string[]> {
  const byPath = new Map<string, string[]>();
  for (const request of receiver.requests) {
    const list = byPath.get(request.path) ?? [];
    list.push((JSON.parse(request.body) as { id: string }).id);
    byPath.set(request.path, list);
  }
  return byPath;
}

/** The sequence with immediate repeats removed: a redelivered in-flight event shows up twice in a row. */
function withoutImmediateRepeats(ids: string[]): string[] {
  return ids.filter((id, i) => i === 0 || ids[i - 1] !== id);
}

async function webhooks(system: RunningSystem, baseUrl: string, count: number): Promise<{ workspaceId: string; path: string }[]> {
  const targets: { workspaceId: string; path: string }[] = [];
  for (let i = 0; i < count; i++) {
    const workspaceId = uniqueName(`w${i}`);
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: `w${i}`, plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    await callUnary(system.subscription, system.subscription.createWebhook, {
      workspaceId, name: 'hook', url: `${baseUrl}/${i}`, eventTypes: ['contact.created'], headers: {},
    }, testToken);
    targets.push({ workspaceId, path: `/hook/${i}` });
  }
  return targets;
}

async function publishAll(system: RunningSystem, targets: { workspaceId: string }[], perWebhook: number): Promise<void> {
  for (const [i, target] of targets.entries()) {
    const events: Event[] = Array.from({ length: perWebhook }, (_, n) => contactCreated(`w${i}_e${String(n).padStart(3, '0')}`, target.workspaceId));
    await callUnary(system.ingest, system.ingest.publishEvents, { events }, testToken);
  }
}

describe('dispatcher faults', () => {
  let system: RunningSystem;
  let smtp: SmtpSink;
  const receivers: HttpReceiver[] = [];

  before(async () => {
    smtp = await SmtpSink.start();
    system = await startSystem({
      DELIVERY_ACK_WAIT: '2s', ATTEMPT_TIMEOUT: '300ms', RETRY_DELAYS: '200ms,400ms,600ms', GIVE_UP_AFTER: '1200ms',
      BREAKER_THRESHOLD: '5', BREAKER_WINDOW: '1m', SMTP_URL: smtp.url,
    });
  });

  after(async () => {
    await system?.stop();
    await smtp?.pause();
    for (const receiver of receivers) await receiver.close();
  });

  it('delivers every event at least once, in order per webhook, and logged, and sends one disable notice, through SIGKILLs of two of three replicas', async () => {
    // Each answer takes 30 ms, so the crashes land in the middle of the work.
    const receiver = await HttpReceiver.start((_req, res) => void setTimeout(() => res.end('ok'), 30));
    receivers.push(receiver);
    const perWebhook = 50;
    const targets = await webhooks(system, receiver.url, 20);
    // Three replicas share the work; two of them are killed while it goes on.
    await system.startService('dispatcher');
    await system.startService('dispatcher');
    const [first, second] = system.services.get('dispatcher')!;
    // One more workspace whose endpoint always fails: its breaker trips while the replicas are killed.
    const failing = await HttpReceiver.start((_req, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    receivers.push(failing);
    const failingWorkspace = uniqueName('failing');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: failingWorkspace, name: 'Failing Co', plan: Plan.PLAN_ADVANCED, notificationEmails: ['ops@failing.example'] } }, testToken);
    const failingHook = (await callUnary(system.subscription, system.subscription.createWebhook, {
      workspaceId: failingWorkspace, name: 'always 503', url: failing.url, eventTypes: ['contact.created'], headers: {},
    }, testToken)).webhook!;
    const failingEvents = Array.from({ length: 10 }, (_, n) => contactCreated(`f_e${n}`, failingWorkspace));
    await callUnary(system.ingest, system.ingest.publishEvents, { events: failingEvents }, testToken);
    await publishAll(system, targets, perWebhook);

    await waitUntil(() => receiver.requests.length >= 250, 30_000, () => `only ${receiver.requests.length} deliveries before the first crash`);
    await first!.kill();
    await waitUntil(() => receiver.requests.length >= 500, 30_000, () => `only ${receiver.requests.length} deliveries before the second crash`);
    await second!.kill();
    const atCrash = receiver.requests.length;

    const complete = () => [...arrivalsByPath(receiver).values()].reduce((n, ids) => n + new Set(ids).size, 0) === targets.length * perWebhook;
    await waitUntil(complete, 60_000, () => `${receiver.requests.length} deliveries`);
    assert.ok(atCrash < targets.length * perWebhook, 'the second crash came after everything was delivered');

    const byPath = arrivalsByPath(receiver);
    for (const [i, target] of targets.entries()) {
      const expected = Array.from({ length: perWebhook }, (_, n) => `w${i}_e${String(n).padStart(3, '0')}`);
      assert.deepEqual(withoutImmediateRepeats(byPath.get(target.path) ?? []), expected, `order at ${target.path}`);
    }

    // Once the faults are over, every delivery is in the log as succeeded.
    for (const target of targets) {
      assert.equal((await succeededDeliveries(system, target.workspaceId, perWebhook)).length, perWebhook, `deliveries logged for ${target.workspaceId}`);
    }

    // The failing webhook: one trip and exactly one email, whichever replica decided it and whichever
    // died; each of its events is in the log as dropped (attempts exhausted, or webhook disabled).
    await smtp.waitForMessages(1);
    const logged = await finalDeliveries(system, failingWorkspace, failingHook.id, failingEvents.length, 30_000);
    assert.deepEqual(logged.map((d) => d.eventId), failingEvents.map((e) => e.id).sort());
    for (const delivery of logged) {
      assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_DROPPED, delivery.eventId);
      assert.match(delivery.dropReason, /^(attempts exhausted|webhook disabled)/);
    }
    assert.equal((await breakerTrips(system.prefix, failingWorkspace, 1)).length, 1, 'exactly one trip');
    assert.equal(smtp.messages.filter((m) => m.subject?.includes('Failing Co')).length, 1, 'exactly one email');
    assert.equal(smtp.messages.length, 1, `emails: ${smtp.messages.map((m) => m.subject).join('; ')}`);
  });

  it('keeps healthy webhooks delivering in order while one endpoint never answers', async () => {
    const receiver = await HttpReceiver.start((request, res) => {
      if (request.path === '/hook/0') return; // never answered: every attempt runs into the deadline
      res.end('ok');
    });
    receivers.push(receiver);
    const perWebhook = 20;
    const targets = await webhooks(system, receiver.url, 21);
    await publishAll(system, targets, perWebhook);

    const healthy = targets.slice(1);
    const done = () => {
      const byPath = arrivalsByPath(receiver);
      return healthy.every((t) => (byPath.get(t.path)?.length ?? 0) >= perWebhook);
    };
    await waitUntil(done, 60_000, () => `${receiver.requests.length} deliveries`);
    const byPath = arrivalsByPath(receiver);
    for (const [i, target] of targets.entries()) {
      if (i === 0) continue;
      const expected = Array.from({ length: perWebhook }, (_, n) => `w${i}_e${String(n).padStart(3, '0')}`);
      assert.deepEqual(byPath.get(target.path), expected, `order at ${target.path}`);
    }
    // The hanging endpoint only ever saw its first event: later ones wait behind its retries.
    assert.ok(new Set(byPath.get('/hook/0')).size <= 2);
    assert.equal(byPath.get('/hook/0')![0], 'w0_e000');
  });
});

// Dispatcher replicas sharing the webhooks: each webhook is consumed by one replica at a time (the 16
// delivery shards are leased to replicas), so an endpoint never has two requests of one webhook open at
// once; replicas joining, stopping (SIGTERM) and crashing (SIGKILL) under load lose, repeat (beyond the
// in-flight event of a crash) or reorder nothing; and the queued events of a disabled or deleted webhook
// are dropped exactly once each, with a record, also when that happened while no dispatcher ran.
// Timings are scaled down through configuration; the assertions are about counts and order, not time.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AttemptDecision, DeliveryStatus, Plan, type AttemptRecord, type Delivery, type Event, type PublishEventResponse } from '@webhooks/contracts';
import { deliverShardOf, deliverShards } from '@webhooks/messaging';
import { attemptRecords, callUnary, HttpReceiver, startSystem, TcpProxy, testEnvironment, testToken, uniqueName, type RunningSystem, type ServiceProcess } from '@webhooks/testing';
import { contactCreated, finalDeliveries, publish, waitUntil } from './support.js';

/** Every test's scaled timings: a crashed replica's shards come back after 3 s, its task after 4 s. */
const scaledTimings = {
  DISPATCH_LEASE_TTL: '3s',
  DELIVERY_ACK_WAIT: '4s',
  ATTEMPT_TIMEOUT: '1s',
  RETRY_DELAYS: '200ms,400ms,600ms',
  GIVE_UP_AFTER: '3s',
  BREAKER_THRESHOLD: '1000',
  SHUTDOWN_GRACE: '3s',
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * An endpoint that answers 200 after `answerMs` and records, per path (one path per webhook), the most
 * requests it had open at the same moment. A request counts as open until its response is finished or
 * its connection dropped (a killed replica). `hold` may keep the answer to the `nth` request (from 0) of
 * a path until a promise resolves: an attempt forced to be in flight.
 */
async function trackingEndpoint(answerMs: number, hold: (path: string, nth: number) => Promise<void> | undefined = () => undefined): Promise<{ receiver: HttpReceiver; maxOpen: Map<string, number> }> {
  const open = new Map<string, number>();
  const maxOpen = new Map<string, number>();
  const seen = new Map<string, number>();
  const receiver = await HttpReceiver.start((request, response) => {
    const nth = seen.get(request.path) ?? 0;
    seen.set(request.path, nth + 1);
    const now = (open.get(request.path) ?? 0) + 1;
    open.set(request.path, now);
    maxOpen.set(request.path, Math.max(now, maxOpen.get(request.path) ?? 0));
    response.once('close', () => open.set(request.path, open.get(request.path)! - 1));
    void (hold(request.path, nth) ?? Promise.resolve()).then(() => setTimeout(() => response.end('ok'), answerMs));
  });
  return { receiver, maxOpen };
}

/** The event ids one path received, in arrival order. */
function arrivals(receiver: HttpReceiver, path: string): string[] {
  return receiver.requests.filter((r) => r.path === path).map((r) => (JSON.parse(r.body) as { id: string }).id);
}

/** The sequence with immediate repeats removed: a redelivered in-flight event shows up twice in a row. */
function withoutImmediateRepeats(ids: string[]): string[] {
  return ids.filter((id, i) => i === 0 || ids[i - 1] !== id);
}

/** Polls an async condition until it holds; rejects after `timeoutMs` saying what it waited for. */
async function eventually(condition: () => Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await sleep(250);
  }
}

/** Every delivery of a workspace in the log, all pages. */
async function loggedDeliveries(system: RunningSystem, workspaceId: string): Promise<Delivery[]> {
  const all: Delivery[] = [];
  let pageToken = '';
  do {
    const page = await callUnary(system.deliveryLog, system.deliveryLog.listDeliveries, {
      workspaceId, webhookId: '', eventType: '', status: DeliveryStatus.DELIVERY_STATUS_UNSPECIFIED, pageSize: 100, pageToken,
    }, testToken);
    all.push(...page.deliveries);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

/** One workspace per webhook (a workspace has at most 20), each webhook at `<receiver>/<i>`. */
async function webhooksOnePerWorkspace(system: RunningSystem, receiver: HttpReceiver, count: number): Promise<{ workspaceId: string; webhookId: string; path: string }[]> {
  const targets: { workspaceId: string; webhookId: string; path: string }[] = [];
  for (let i = 0; i < count; i++) {
    const workspaceId = uniqueName(`own${i}`);
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: `own${i}`, plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    const created = await callUnary(system.subscription, system.subscription.createWebhook, {
      workspaceId, name: 'hook', url: `${receiver.url}/${i}`, eventTypes: ['contact.created'], headers: {},
    }, testToken);
    targets.push({ workspaceId, webhookId: created.webhook!.id, path: `/hook/${i}` });
  }
  return targets;
}

async function createWebhook(system: RunningSystem, workspaceId: string, name: string, url: string): Promise<string> {
  const created = await callUnary(system.subscription, system.subscription.createWebhook, {
    workspaceId, name, url, eventTypes: ['contact.created'], headers: {},
  }, testToken);
  return created.webhook!.id;
}

/** The shards a replica holds according to its own log: its "shards acquired" minus its "shards released". */
function heldShards(replica: ServiceProcess): Set<number> {
  const held = new Set<number>();
  for (const line of replica.logs) {
    const shards = Array.isArray(line.shards) ? (line.shards as number[]) : [];
    if (line.msg === 'shards acquired') for (const shard of shards) held.add(shard);
    if (line.msg === 'shards released') for (const shard of shards) held.delete(shard);
  }
  return held;
}

/** What is wrong with the shards `replicas` hold (each shard exactly once among them), or '' when nothing. */
function ownershipProblem(replicas: ServiceProcess[]): string {
  const owners = new Map<number, number[]>();
  replicas.forEach((replica, index) => {
    for (const shard of heldShards(replica)) owners.set(shard, [...(owners.get(shard) ?? []), index]);
  });
  const problems: string[] = [];
  for (let shard = 0; shard < deliverShards; shard++) {
    const held = owners.get(shard) ?? [];
    if (held.length !== 1) problems.push(`shard ${shard} held by ${held.length === 0 ? 'no replica' : `replicas ${held.join(' and ')}`}`);
  }
  const perReplica = replicas.map((replica, index) => `replica ${index}: [${[...heldShards(replica)].sort((a, b) => a - b).join(',')}]`).join('; ');
  return problems.length === 0 ? '' : `${problems.join(', ')} (${perReplica})`;
}

/** Waits until the running `replicas` hold every shard exactly once between them (per their logs). */
async function shardsSettle(replicas: ServiceProcess[], timeoutMs = 20_000): Promise<void> {
  await waitUntil(() => ownershipProblem(replicas) === '', timeoutMs, () => `every shard held by exactly one replica: ${ownershipProblem(replicas)}`);
}

/** The final decisions (succeeded or dropped) per event among a webhook's attempt records. */
function finalRecordsByEvent(records: AttemptRecord[]): Map<string, AttemptRecord[]> {
  const byEvent = new Map<string, AttemptRecord[]>();
  for (const record of records) {
    if (record.decision !== AttemptDecision.ATTEMPT_DECISION_SUCCEEDED && record.decision !== AttemptDecision.ATTEMPT_DECISION_DROPPED) continue;
    byEvent.set(record.eventId, [...(byEvent.get(record.eventId) ?? []), record]);
  }
  return byEvent;
}

function decisionName(record: AttemptRecord): string {
  return record.decision === AttemptDecision.ATTEMPT_DECISION_SUCCEEDED ? 'succeeded' : `dropped (${record.dropReason})`;
}

async function stopAllDispatchers(system: RunningSystem): Promise<void> {
  for (const replica of system.services.get('dispatcher') ?? []) await replica.stop();
}

describe('dispatcher replicas: one replica per webhook', () => {
  let system: RunningSystem;
  let receiver: HttpReceiver;

  after(async () => {
    await system?.stop();
    await receiver?.close();
  });

  it('never has two requests of one webhook open at once with three replicas, and delivers in order', async () => {
    system = await startSystem(scaledTimings);
    await system.startService('dispatcher');
    await system.startService('dispatcher');
    const replicas = system.services.get('dispatcher')!;
    // A few milliseconds per answer, so a second replica sending the same webhook's next event would overlap.
    const endpoint = await trackingEndpoint(5);
    receiver = endpoint.receiver;
    const perWebhook = 30;
    const targets = await webhooksOnePerWorkspace(system, receiver, 30);
    const idsOf = (i: number) => Array.from({ length: perWebhook }, (_, n) => `w${i}_e${String(n).padStart(3, '0')}`);
    for (const [i, target] of targets.entries()) {
      const events: Event[] = idsOf(i).map((id) => contactCreated(id, target.workspaceId));
      await callUnary(system.ingest, system.ingest.publishEvents, { events }, testToken);
    }

    const total = targets.length * perWebhook;
    await waitUntil(() => receiver.requests.length >= total, 90_000, () => `${total} deliveries (got ${receiver.requests.length})`);
    for (const [i, target] of targets.entries()) {
      assert.deepEqual(arrivals(receiver, target.path), idsOf(i), `each event once, in order, at ${target.path}`);
      assert.equal(endpoint.maxOpen.get(target.path), 1, `most requests open at once at ${target.path}`);
    }

    // Ownership: between them the three replicas hold every shard exactly once, each its share.
    await shardsSettle(replicas);
    for (const [index, replica] of replicas.entries()) {
      const held = heldShards(replica).size;
      assert.ok(held >= Math.floor(deliverShards / 3) && held <= Math.ceil(deliverShards / 3), `replica ${index} holds ${held} of ${deliverShards} shards`);
    }
  });
});

describe('dispatcher replicas joining, stopping and crashing under load', () => {
  let system: RunningSystem;
  let receiver: HttpReceiver;

  after(async () => {
    await system?.stop();
    await receiver?.close();
  });

  it('delivers every accepted event, in order, logged, through a join, a SIGTERM and a SIGKILL', async () => {
    system = await startSystem(scaledTimings);
    await system.startService('dispatcher');
    await system.startService('dispatcher');
    const endpoint = await trackingEndpoint(5);
    receiver = endpoint.receiver;
    const targets = (await webhooksOnePerWorkspace(system, receiver, 20)).map((target) => ({ ...target, accepted: [] as string[] }));

    // Steady load: each workspace publishes one event after another, a little apart.
    let loading = true;
    const load = Promise.all(
      targets.map(async (target, i) => {
        for (let n = 0; loading; n++) {
          const id = `w${i}_e${String(n).padStart(4, '0')}`;
          const answer: PublishEventResponse = await publish(system, contactCreated(id, target.workspaceId));
          assert.deepEqual(answer.result!.webhookIds, [target.webhookId], `${id} routed to its webhook`);
          target.accepted.push(id);
          await sleep(150);
        }
      }),
    );
    // A failed publish or routing assertion surfaces at `await load`, not as an unhandled rejection before it.
    load.catch(() => undefined);
    const delivered = () => receiver.requests.length;
    const more = async (count: number, before: string) => {
      const from = delivered();
      await waitUntil(() => delivered() >= from + count, 60_000, () => `${count} more deliveries before ${before} (got ${delivered() - from})`);
    };

    try {
      await waitUntil(() => targets.every((t) => arrivals(receiver, t.path).length > 0), 60_000, 'a first delivery at every endpoint');
      const [first, second, third] = system.services.get('dispatcher')!;
      const fourth = await system.startService('dispatcher');
      await more(60, 'the SIGTERM');
      // What each victim held when it went (checked at the end, with the other ownership assertions).
      const heldAtStop = heldShards(first!).size;
      await first!.stop();
      await more(60, 'the SIGKILL');
      const heldAtKill = heldShards(second!);
      await second!.kill();
      // Every webhook gets an event accepted after the crash: the crashed replica's webhooks were taken over.
      const afterKill = targets.map((t) => t.accepted.length);
      await waitUntil(
        () => targets.every((t, i) => t.accepted.length > afterKill[i]! && arrivals(receiver, t.path).includes(t.accepted[afterKill[i]!]!)),
        60_000,
        () => `a delivery after the SIGKILL at every endpoint (missing at ${targets.filter((t, i) => !arrivals(receiver, t.path).includes(t.accepted[afterKill[i]!] ?? '')).map((t) => t.path).join(', ')})`,
      );
      loading = false;
      await load;

      await waitUntil(
        () => targets.every((t) => new Set(arrivals(receiver, t.path)).size >= t.accepted.length),
        60_000,
        () => `every accepted event delivered (${targets.map((t) => `${t.path}: ${new Set(arrivals(receiver, t.path)).size}/${t.accepted.length}`).join(', ')})`,
      );
      let repeats = 0;
      const repeatedAt: typeof targets = [];
      for (const target of targets) {
        const received = arrivals(receiver, target.path);
        const once = withoutImmediateRepeats(received);
        repeats += received.length - once.length;
        if (received.length > once.length) repeatedAt.push(target);
        // In order, each once, the only repeat being the event in flight on the killed replica.
        assert.deepEqual(once, target.accepted, `order and completeness at ${target.path}`);
        assert.equal(endpoint.maxOpen.get(target.path), 1, `most requests open at once at ${target.path}`);
      }
      assert.ok(repeats <= targets.length, `${repeats} immediate repeats`);
      console.log(`membership under load: ${targets.reduce((n, t) => n + t.accepted.length, 0)} events accepted for ${targets.length} webhooks, ${receiver.requests.length} deliveries, ${repeats} immediate repeats`);

      // Every accepted event is in the delivery log as succeeded.
      for (const target of targets) {
        let logged: Delivery[] = [];
        await eventually(
          async () => {
            logged = await loggedDeliveries(system, target.workspaceId);
            return logged.filter((d) => d.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED).length >= target.accepted.length;
          },
          30_000,
          () => `${target.accepted.length} succeeded deliveries logged for ${target.path} (${logged.filter((d) => d.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED).length})`,
        );
        assert.deepEqual(logged.map((d) => d.eventId).sort(), [...target.accepted].sort(), `the log of ${target.path}: each event once`);
      }

      // Ownership: both victims held shards when they went; the replica stopped with SIGTERM released
      // what it held; the two left hold every shard once.
      assert.ok(heldAtStop > 0 && heldAtKill.size > 0, `shards held by the replica stopped (${heldAtStop}) and the one killed (${heldAtKill.size})`);
      // A repeat is an event in flight on the killed replica: a webhook of a shard it held.
      const notKilled = repeatedAt.filter((t) => !heldAtKill.has(deliverShardOf(t.webhookId)));
      assert.deepEqual(notKilled.map((t) => t.path), [], `repeats at webhooks the killed replica did not own (it held shards ${[...heldAtKill].join(',')})`);
      assert.deepEqual([...heldShards(first!)], [], 'shards still held by the replica stopped with SIGTERM, per its log');
      await shardsSettle([third!, fourth]);
    } finally {
      loading = false;
      await load.catch(() => undefined);
    }
  });
});

describe('a dispatcher replica cut off from NATS', () => {
  let system: RunningSystem;
  let receiver: HttpReceiver;
  let proxy: TcpProxy | undefined;

  after(async () => {
    await system?.stop();
    await receiver?.close();
    await proxy?.close();
  });

  it('never overlaps its requests with its successor\'s, and nothing arrives after a newer event of its webhook', async () => {
    // A 6 s lease with requests of up to 2.5 s (the start-up rule: 2.5 s + 0.3 s margin <= 3 s), and an
    // endpoint answering in 2 s: a request started late in a lease is still open when it would lapse.
    system = await startSystem({ DISPATCH_LEASE_TTL: '6s', ATTEMPT_TIMEOUT: '2500ms', DELIVERY_ACK_WAIT: '8s', RETRY_DELAYS: '200ms,400ms,600ms', GIVE_UP_AFTER: '60s', BREAKER_THRESHOLD: '1000', SHUTDOWN_GRACE: '3s' });
    const direct = system.services.get('dispatcher')![0]!;
    // The second replica reaches NATS through a proxy that can stop forwarding without closing anything.
    proxy = await TcpProxy.start({ host: '127.0.0.1', port: Number(new URL(testEnvironment.natsUrl).port) });
    const cutOff = await system.startService('dispatcher', { NATS_URL: `nats://${proxy.address}` });
    await waitUntil(() => ownershipProblem([direct, cutOff]) === '' && heldShards(cutOff).size === deliverShards / 2, 30_000, () => `the shards split between the two: ${ownershipProblem([direct, cutOff])}`);
    const endpoint = await trackingEndpoint(2_000);
    receiver = endpoint.receiver;
    const targets = await webhooksOnePerWorkspace(system, receiver, 16);
    const perWebhook = 8;
    const idsOf = (i: number) => Array.from({ length: perWebhook }, (_, n) => `w${i}_e${n}`);
    for (const [i, target] of targets.entries()) {
      await callUnary(system.ingest, system.ingest.publishEvents, { events: idsOf(i).map((id) => contactCreated(id, target.workspaceId)) }, testToken);
    }
    const cutShards = heldShards(cutOff);
    const itsTargets = targets.filter((t) => cutShards.has(deliverShardOf(t.webhookId)));
    assert.ok(itsTargets.length > 0, `some webhooks on the replica to cut off (it holds shards ${[...cutShards].join(',')})`);
    // Cut off while its webhooks have requests in flight, for longer than the lease.
    await waitUntil(() => itsTargets.every((t) => arrivals(receiver, t.path).length > 0), 30_000, 'a first delivery at each of its webhooks');
    proxy.stall();
    await sleep(14_000);
    proxy.resume();

    const total = targets.length * perWebhook;
    await waitUntil(
      () => targets.every((t, i) => new Set(arrivals(receiver, t.path)).size === idsOf(i).length),
      120_000,
      () => `all ${total} events delivered (${targets.map((t) => `${t.path}: ${new Set(arrivals(receiver, t.path)).size}`).join(', ')})`,
    );
    let repeats = 0;
    for (const [i, target] of targets.entries()) {
      const received = arrivals(receiver, target.path);
      const once = withoutImmediateRepeats(received);
      repeats += received.length - once.length;
      // The only repeat allowed: the event in flight when the replica was cut off, whose success it could not record.
      assert.deepEqual(once, idsOf(i), `order at ${target.path}: nothing arrives after a newer event`);
      assert.equal(endpoint.maxOpen.get(target.path), 1, `most requests open at once at ${target.path}`);
    }
    assert.ok(repeats <= itsTargets.length, `${repeats} repeats, at most one per webhook of the replica cut off (${itsTargets.length})`);
    const paused = cutOff.logs.filter((line) => line.msg === 'shard leases not renewed in time; their shards pause until a renewal goes through').length;
    assert.ok(paused > 0, 'the replica cut off paused its shards');
    console.log(`partition: ${total} events to ${targets.length} webhooks (${itsTargets.length} on the replica cut off for 14 s), ${receiver.requests.length} requests, ${repeats} repeats`);
  });
});

describe('disabled and deleted webhooks with queued events, across replicas', () => {
  let system: RunningSystem;
  let receiver: HttpReceiver;

  before(async () => {
    // Room for an attempt held open while the webhook is disabled (ATTEMPT_TIMEOUT + 1 s margin + 2 s to
    // store its record must fit in DELIVERY_ACK_WAIT, and the attempt in a lease).
    system = await startSystem({ ...scaledTimings, ATTEMPT_TIMEOUT: '3s', DELIVERY_ACK_WAIT: '6s', DISPATCH_LEASE_TTL: '7s' });
    await system.startService('dispatcher');
    await system.startService('dispatcher');
  });

  after(async () => {
    await system?.stop();
    await receiver?.close();
  });

  it('drops each queued event of a webhook disabled or deleted during delivery exactly once, with a record', async () => {
    // A slow endpoint: tasks queue up behind the one being answered. The 4th event of the webhooks to
    // disable and delete is held until both calls returned: an attempt is in flight for each of them.
    const heldEvent = 3;
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const heldPaths = ['/hook/disabled', '/hook/deleted'];
    const endpoint = await trackingEndpoint(150, (path, nth) => (heldPaths.includes(path) && nth === heldEvent ? released : undefined));
    receiver = endpoint.receiver;
    const workspaceId = uniqueName('lifecycle');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'Lifecycle', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    const disabled = { id: await createWebhook(system, workspaceId, 'to disable', `${receiver.url}/disabled`), path: '/hook/disabled', reason: 'webhook disabled' };
    const deleted = { id: await createWebhook(system, workspaceId, 'to delete', `${receiver.url}/deleted`), path: '/hook/deleted', reason: 'webhook deleted' };
    const kept = { id: await createWebhook(system, workspaceId, 'kept', `${receiver.url}/kept`), path: '/hook/kept' };
    const ids = Array.from({ length: 12 }, (_, n) => `q${String(n).padStart(2, '0')}`);
    await callUnary(system.ingest, system.ingest.publishEvents, { events: ids.map((id) => contactCreated(id, workspaceId)) }, testToken);

    let atDisable: number;
    let atDelete: number;
    try {
      await waitUntil(() => heldPaths.every((path) => arrivals(receiver, path).length > heldEvent), 30_000, () => `the held event at ${heldPaths.join(' and ')}`);
      await callUnary(system.subscription, system.subscription.deactivateWebhook, { workspaceId, webhookId: disabled.id }, testToken);
      atDisable = arrivals(receiver, disabled.path).length;
      await callUnary(system.subscription, system.subscription.deleteWebhook, { workspaceId, webhookId: deleted.id }, testToken);
      atDelete = arrivals(receiver, deleted.path).length;
    } finally {
      // The attempts in flight now succeed, after the disable and the delete returned.
      release();
    }
    assert.deepEqual([atDisable, atDelete], [heldEvent + 1, heldEvent + 1], 'requests when the calls returned: nothing past the held one');

    // The kept webhook gets everything, in order: the drains around it disturb nothing.
    await waitUntil(() => arrivals(receiver, kept.path).length >= ids.length, 30_000, () => `${ids.length} deliveries to the kept webhook (${arrivals(receiver, kept.path).length})`);
    assert.deepEqual(arrivals(receiver, kept.path), ids);

    for (const [webhook, returnedAt] of [[disabled, atDisable], [deleted, atDelete]] as const) {
      // One final record per event (read again after a pause, so a late second one would show).
      await attemptRecords(system.prefix, workspaceId, webhook.id, ids.length, 30_000);
      await sleep(2_000);
      const records = await attemptRecords(system.prefix, workspaceId, webhook.id, ids.length, 30_000);
      const finals = finalRecordsByEvent(records);
      const received = arrivals(receiver, webhook.path);
      // Nothing after the call returned: the request in flight then (held) had already arrived.
      assert.deepEqual(received, ids.slice(0, returnedAt), `${webhook.path}: requests in all`);
      // Every event at once, so a failure shows each event decided wrongly.
      assert.deepEqual(
        ids.map((id) => `${id}: ${(finals.get(id) ?? []).map(decisionName).join(' + ')}`),
        ids.map((id) => `${id}: ${received.includes(id) ? 'succeeded' : `dropped (${webhook.reason})`}`),
        `final attempt records per event at ${webhook.path}`,
      );
      // The delivery log agrees: delivered ones succeeded, the rest dropped with the reason.
      const logged = await finalDeliveries(system, workspaceId, webhook.id, ids.length, 30_000);
      assert.deepEqual(
        logged.map((d) => [d.eventId, d.status, d.dropReason]),
        ids.map((id) => (received.includes(id) ? [id, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED, ''] : [id, DeliveryStatus.DELIVERY_STATUS_DROPPED, webhook.reason])),
        `the delivery log of ${webhook.path}`,
      );
      assert.equal(endpoint.maxOpen.get(webhook.path), 1, `most requests open at once at ${webhook.path}`);
    }
  });

  it('drops the events queued for webhooks disabled or deleted while no dispatcher ran, once each, with a record', async () => {
    const workspaceId = uniqueName('offline');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'Offline', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    const url = (name: string) => `${receiver.url}/offline-${name}`;
    const disabled = { id: await createWebhook(system, workspaceId, 'to disable', url('disabled')), path: '/hook/offline-disabled', reason: 'webhook disabled' };
    const deleted = { id: await createWebhook(system, workspaceId, 'to delete', url('deleted')), path: '/hook/offline-deleted', reason: 'webhook deleted' };
    const kept = { id: await createWebhook(system, workspaceId, 'kept', url('kept')), path: '/hook/offline-kept' };
    // The dispatchers have seen these webhooks: one event reached each.
    await publish(system, contactCreated('warm', workspaceId));
    await waitUntil(() => [disabled, deleted, kept].every((w) => arrivals(receiver, w.path).includes('warm')), 30_000, 'the first event at each webhook');

    await stopAllDispatchers(system);
    // Created, given events and deleted while no dispatcher ran: no dispatcher ever saw it.
    const unseen = { id: await createWebhook(system, workspaceId, 'never seen', url('unseen')), path: '/hook/offline-unseen', reason: 'webhook deleted' };
    const ids = ['o1', 'o2', 'o3', 'o4', 'o5'];
    for (const id of ids) {
      const answer = await publish(system, contactCreated(id, workspaceId));
      assert.equal(answer.result!.webhookIds.length, 4, `${id} queued for the four webhooks while no dispatcher runs`);
    }
    await callUnary(system.subscription, system.subscription.deactivateWebhook, { workspaceId, webhookId: disabled.id }, testToken);
    await callUnary(system.subscription, system.subscription.deleteWebhook, { workspaceId, webhookId: deleted.id }, testToken);
    await callUnary(system.subscription, system.subscription.deleteWebhook, { workspaceId, webhookId: unseen.id }, testToken);
    await system.startService('dispatcher');

    await waitUntil(() => arrivals(receiver, kept.path).length >= ids.length + 1, 30_000, 'the queued events at the kept webhook');
    assert.deepEqual(arrivals(receiver, kept.path), ['warm', ...ids]);

    // Every case is checked (side by side) before failing, so one run shows each one that is wrong.
    const problems: string[] = [];
    await Promise.all([disabled, deleted, unseen].map(async (webhook) => {
      const sent = arrivals(receiver, webhook.path).filter((id) => id !== 'warm');
      if (sent.length > 0) problems.push(`${webhook.path} received ${sent.join(', ')}`);
      let records: AttemptRecord[] = [];
      try {
        await attemptRecords(system.prefix, workspaceId, webhook.id, ids.length, 20_000);
        await sleep(1_000);
        records = await attemptRecords(system.prefix, workspaceId, webhook.id, ids.length, 5_000);
      } catch (error) {
        problems.push(`${webhook.path}: ${(error as Error).message}`);
      }
      const finals = finalRecordsByEvent(records);
      for (const id of ids) {
        const decided = (finals.get(id) ?? []).map(decisionName);
        if (decided.length !== 1 || decided[0] !== `dropped (${webhook.reason})`) problems.push(`${webhook.path}: ${id} decided [${decided.join(', ')}], expected one dropped (${webhook.reason})`);
      }
      try {
        const logged = (await finalDeliveries(system, workspaceId, webhook.id, ids.length + (webhook === unseen ? 0 : 1), 10_000)).filter((d) => d.eventId !== 'warm');
        const wrong = logged.filter((d) => d.status !== DeliveryStatus.DELIVERY_STATUS_DROPPED || d.dropReason !== webhook.reason);
        if (logged.length !== ids.length || wrong.length > 0) problems.push(`${webhook.path}: the log shows ${JSON.stringify(logged.map((d) => [d.eventId, d.status, d.dropReason]))}`);
      } catch (error) {
        problems.push(`${webhook.path}: ${(error as Error).message}`);
      }
    }));
    assert.deepEqual(problems.sort(), []);
  });
});

// Attempt records of successes stored many to a message, against real NATS and a real endpoint on
// 127.0.0.1: records added together go together within the limits and in order; a failed store rejects
// every record of its batch and they are stored once added again; and a replica taking a shard over
// recalls the successes stored there, so a task whose success was stored but whose ack was lost is
// settled without being sent again.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AttemptDecision, AttemptRecord, AttemptRecordBatch, DeliveryTask, encodeMessage, Route } from '@webhooks/contracts';
import { deliveryIdOf, SecretBox } from '@webhooks/domain';
import { deliverShardOf, ensureTopology, jetstream, JetStreamPublisher, natsHeaders, parkedFromHeader, readStored, RoutingTable, type Buckets, type JetStreamManager, type MsgHdrs } from '@webhooks/messaging';
import { createLogger } from '@webhooks/telemetry';
import { attemptRecords, createTestTopology, HttpReceiver, uniqueName, type TestTopology } from '@webhooks/testing';
import { Breaker, Suspensions } from '../src/breaker.js';
import { BreakerQueue } from '../src/breaker-queue.js';
import { Deliverer } from '../src/delivery.js';
import { Dispatch, type TaskMessage } from '../src/dispatch.js';
import { HttpSender } from '../src/http-sender.js';
import { flushAfterMs } from '../src/deferred-acks.js';
import { RecordBatches } from '../src/record-batches.js';

const logger = createLogger('record-batches-test');
const urlPolicy = { allowHttp: true, allowedHosts: ['127.0.0.0/8'], maxLength: 2048 };
const retryPolicy = { delaysMs: [30_000, 60_000, 90_000], giveUpAfterMs: 180_000 };

function record(webhookId: string, n: number): AttemptRecord {
  return AttemptRecord.fromPartial({ eventId: `e${n}`, workspaceId: 'ws', webhookId, deliveryId: deliveryIdOf(`e${n}`, webhookId), attemptNumber: 1, decision: AttemptDecision.ATTEMPT_DECISION_SUCCEEDED });
}

/** A task message whose acks and terms are counted and go nowhere: as if lost on their way to the server. */
function taskMessage(task: DeliveryTask, seq: number, headers?: MsgHdrs): TaskMessage & { acks: number; terms: number } {
  return {
    data: encodeMessage(DeliveryTask, task),
    headers,
    seq,
    info: { deliveryCount: 1 },
    acks: 0,
    terms: 0,
    ack() {
      this.acks++;
    },
    term() {
      this.terms++;
    },
    nak() {},
    working() {},
  };
}

describe('attempt record batches on real NATS', () => {
  let test: TestTopology;
  let buckets: Buckets;
  let jsm: JetStreamManager;
  let routes: RoutingTable;
  let publisher: JetStreamPublisher;
  let receiver: HttpReceiver;

  before(async () => {
    test = await createTestTopology();
    ({ jsm, buckets } = await ensureTopology(test.nc, test.topology));
    routes = await RoutingTable.open(buckets.routes);
    publisher = new JetStreamPublisher(test.nc);
    receiver = await HttpReceiver.start();
  });

  after(async () => {
    routes?.stop();
    publisher?.close();
    await receiver?.close();
    await test?.remove();
  });

  /** A webhook whose endpoint is the receiver, in the routing table. */
  async function routedWebhook(): Promise<{ workspaceId: string; webhookId: string }> {
    const workspaceId = uniqueName('ws');
    const webhookId = uniqueName('wh');
    const route: Route = { webhookId, workspaceId, url: receiver.url, eventTypes: ['contact.created'], headers: {}, active: true, secrets: [], version: 1, name: 'h', rateLimit: 0, auth: undefined };
    await buckets.routes.put(test.topology.keys.webhook(workspaceId, webhookId), Route.encode(route).finish());
    await routes.sync();
    return { workspaceId, webhookId };
  }

  /** A replica's dispatch, remembering ended deliveries for `recallWindowMs`, asking `mayAct` before each request. */
  function dispatchReplica(recallWindowMs: number, mayAct?: (shard: number) => Promise<boolean>): Dispatch {
    const t = test.topology;
    const deliverer = new Deliverer(new HttpSender(urlPolicy, 2_000), SecretBox.fromBase64(randomBytes(32).toString('base64')), urlPolicy, retryPolicy, 2_000);
    const breaker = new BreakerQueue(new Breaker(buckets.breaker, publisher, t, routes, { threshold: 30, windowMs: 60_000 }, logger), logger);
    return new Dispatch(publisher, jsm, t, routes, deliverer, retryPolicy, breaker, new Suspensions(), logger, 2_000, new RecordBatches(publisher, t), jetstream(test.nc), recallWindowMs, mayAct);
  }

  it('stores records added together as batches within the limits, in the order they came', async () => {
    const t = test.topology;
    const webhookId = uniqueName('wh');
    const shard = deliverShardOf(webhookId);
    const batches = new RecordBatches(publisher, t, { maxRecords: 20, maxBytes: 64 * 1024 });
    await Promise.all(Array.from({ length: 50 }, (_, n) => batches.add(shard, record(webhookId, n), () => {})));
    const stored = (await readStored(jetstream(test.nc), t.streams.attempts, t.subjects.attemptBatch(shard))).map((m) => AttemptRecordBatch.decode(m.data).records);
    assert.deepEqual(
      stored.map((records) => records.length),
      [20, 20, 10],
      'records added together go together, at most 20 to a batch',
    );
    assert.deepEqual(
      stored.flat().map((r) => r.eventId),
      Array.from({ length: 50 }, (_, n) => `e${n}`),
    );
    // A record bigger than the byte limit goes alone rather than never.
    const big = { ...record(webhookId, 50), body: randomBytes(80 * 1024) };
    await Promise.all([batches.add(shard, big, () => {}), batches.add(shard, record(webhookId, 51), () => {})]);
    const records = await attemptRecords(t.options.prefix, 'ws', webhookId, 52);
    assert.equal(records[50]!.body.length, 80 * 1024);
    assert.equal(records[51]!.eventId, 'e51');
  });

  it('rejects every record of a batch whose store failed; added again, they are stored', async () => {
    const t = test.topology;
    const webhookId = uniqueName('wh');
    const shard = deliverShardOf(webhookId);
    const batches = new RecordBatches(publisher, t);
    const { config } = await jsm.streams.info(t.streams.attempts);
    // The attempts stream stops taking records: no stream answers for the batch subject.
    await jsm.streams.update(t.streams.attempts, { ...config, subjects: [`${t.options.prefix}.parked.attempts.>`] });
    const kept: number[] = [];
    let results: PromiseSettledResult<void>[];
    try {
      results = await Promise.allSettled([1, 2, 3].map((n) => batches.add(shard, record(webhookId, n), () => kept.push(n))));
    } finally {
      await jsm.streams.update(t.streams.attempts, { ...config, subjects: [t.subjects.attemptsAll] });
    }
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected', 'rejected'],
    );
    await Promise.all([1, 2, 3].map((n) => batches.add(shard, record(webhookId, n), () => {})));
    assert.deepEqual(
      (await attemptRecords(t.options.prefix, 'ws', webhookId, 3)).map((r) => r.eventId),
      ['e1', 'e2', 'e3'],
    );
  });

  it('settles without a new request a task whose success was stored but not acked, once its new owner recalled the shard', async () => {
    const { workspaceId, webhookId } = await routedWebhook();
    const shard = deliverShardOf(webhookId);
    const replica = () => dispatchReplica(60_000);
    const task = DeliveryTask.fromPartial({ eventId: uniqueName('e'), workspaceId, webhookId, eventType: 'contact.created', body: Buffer.from('{"n":1}'), acceptedAt: new Date() });
    const before = receiver.requests.length;
    // When the task was stored (the shard consumer reads it from the stream: shard-consumer.ts rule 2).
    const storedAt = Date.now();

    // The first owner delivers it and stores the success; its ack never reaches the server.
    const first = taskMessage(task, 7);
    assert.equal(await replica().handle(first, 'lane'), 'settled');
    assert.equal(receiver.requests.length, before + 1);
    // The ack goes with the next record batch, or flushAfterMs later (deferred-acks.ts).
    await new Promise((resolve) => setTimeout(resolve, flushAfterMs * 4));
    assert.equal(first.acks, 1);

    // The next owner is handed the same task as maybe attempted, and recalls the shard first.
    const next = replica();
    assert.ok((await next.recall(shard, storedAt)) >= 1, 'the stored success is recalled');
    const again = taskMessage(task, 7);
    assert.equal(await next.handle(again, 'lane', true), 'settled');
    assert.equal(again.acks, 1, 'settled as delivered');
    assert.equal(receiver.requests.length, before + 1, 'the endpoint was not sent the event again');
    assert.deepEqual(
      (await attemptRecords(test.topology.options.prefix, workspaceId, webhookId, 1)).map((r) => [r.attemptNumber, r.decision]),
      [[1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED]],
      'one record: no second attempt was made',
    );
  });

  it('recalls a success stored longer ago than the ended deliveries are remembered, from the task\'s own store time', async () => {
    const { workspaceId, webhookId } = await routedWebhook();
    const shard = deliverShardOf(webhookId);
    // Ended deliveries are remembered for 300 ms here (2 × (ack wait + lease) in production).
    const replica = () => dispatchReplica(300);
    const task = DeliveryTask.fromPartial({ eventId: uniqueName('e'), workspaceId, webhookId, eventType: 'contact.created', body: Buffer.from('{"n":2}'), acceptedAt: new Date() });
    const before = receiver.requests.length;
    const storedAt = Date.now();
    const first = taskMessage(task, 11);
    assert.equal(await replica().handle(first, 'lane'), 'settled');
    assert.equal(receiver.requests.length, before + 1);
    // Its ack was lost, and the shard changes hands only after the window (acks lost again and again).
    await new Promise((resolve) => setTimeout(resolve, 900));
    const next = replica();
    // Before, the recall read the last 300 ms by the dispatcher's clock and found nothing: the event was sent again.
    assert.ok((await next.recall(shard, storedAt)) >= 1, 'the success is recalled from the task\'s store time');
    const again = taskMessage(task, 11);
    assert.equal(await next.handle(again, 'lane', true), 'settled');
    assert.equal(again.acks, 1, 'settled as delivered');
    assert.equal(receiver.requests.length, before + 1, 'the endpoint was not sent the event again');
  });

  it('settles a parked task whose success was stored but not removed from the park, by its record, with no recall', async () => {
    const { workspaceId, webhookId } = await routedWebhook();
    const replica = () => dispatchReplica(300);
    const task = DeliveryTask.fromPartial({ eventId: uniqueName('e'), workspaceId, webhookId, eventType: 'contact.created', body: Buffer.from('{"n":3}'), acceptedAt: new Date() });
    const parked = () => {
      const headers = natsHeaders();
      headers.set(parkedFromHeader, '5');
      return taskMessage(task, 21, headers);
    };
    const before = receiver.requests.length;
    const first = parked();
    assert.equal(await replica().handle(first, 'parked'), 'settled');
    assert.equal(first.acks, 1);
    assert.equal(receiver.requests.length, before + 1);
    // The park copy was not removed (its owner died), and the next reader comes long after any window.
    await new Promise((resolve) => setTimeout(resolve, 900));
    const again = parked();
    assert.equal(await replica().handle(again, 'parked'), 'settled');
    assert.equal(again.acks, 1, 'settled as delivered');
    assert.equal(receiver.requests.length, before + 1, 'the endpoint was not sent the event again');
  });

  it('makes no request once the lease is lost between the lane\'s check and the request (the record lookup and the pacing come in between)', async () => {
    const { workspaceId, webhookId } = await routedWebhook();
    let asked = 0;
    const fenced = dispatchReplica(60_000, async (shard) => {
      asked++;
      assert.equal(shard, deliverShardOf(webhookId));
      return false;
    });
    const before = receiver.requests.length;
    const message = taskMessage(DeliveryTask.fromPartial({ eventId: uniqueName('e'), workspaceId, webhookId, eventType: 'contact.created', body: Buffer.from('{}'), acceptedAt: new Date() }), 9);
    assert.equal(await fenced.handle(message, 'lane'), 'abandoned');
    assert.equal(asked, 1);
    assert.equal(receiver.requests.length, before, 'no request without the lease');
    assert.equal(message.acks, 0, 'the task is left to the next owner');
  });
});

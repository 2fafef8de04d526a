// Shard consumers, lanes and parks against real NATS: a handler that throws is tried again with the
// task kept at the head of its lane; a shard loop whose consumer vanished is restarted; a lane that must
// wait is parked with its later tasks, in order, and comes back to its lane once the park is empty.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DeliveryTask, Route } from '@webhooks/contracts';
import { ensureTopology, jetstream, JetStreamPublisher, natsHeaders, parkedFromHeader, parkedTenureHeader, RoutingTable, type Buckets, type JetStreamClient, type JetStreamManager } from '@webhooks/messaging';
import { createLogger, type Logger } from '@webhooks/telemetry';
import { createTestTopology, timeoutError, uniqueName, waitUntil, withReplaced, type TestTopology } from '@webhooks/testing';
import { Suspensions } from '../src/breaker.js';
import { DeliveryConsumers, type DeliveryHandler } from '../src/consumers.js';
import type { Handled, TaskMessage, TaskPath } from '../src/dispatch.js';

const logger = createLogger('consumers-test');

describe('supervised delivery loops on real NATS', () => {
  let test: TestTopology;
  let buckets: Buckets;
  let jsm: JetStreamManager;
  let routes: RoutingTable;
  let publisher: JetStreamPublisher;
  let consumers: DeliveryConsumers | undefined;
  /** The webhooks the running test made (activeWebhook): tasks of any other are an earlier test's leftovers. */
  const ofThisTest = new Set<string>();

  beforeEach(() => ofThisTest.clear());

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
    const { workspaceId, webhookId } = await activeWebhook();

    const handled: string[] = [];
    const downReports: number[] = [];
    let thrown = false;
    const handle = async (message: TaskMessage): Promise<Handled> => {
      const task = DeliveryTask.decode(message.data);
      // A bug in the handler, once: the loop ends with this error.
      if (task.eventId === 'e3' && !thrown) {
        thrown = true;
        throw new Error('injected handler failure');
      }
      handled.push(task.eventId);
      message.ack();
      return 'settled';
    };
    consumers = replica(handle, { ackWaitMs: 5_000, onLoopsDown: (down) => downReports.push(down) });
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
    await consumers.stop();
    consumers = undefined;
  });

  async function activeWebhook(): Promise<{ workspaceId: string; webhookId: string }> {
    const workspaceId = uniqueName('ws');
    const webhookId = uniqueName('wh');
    const route: Route = { webhookId, workspaceId, url: 'https://example.com/h', eventTypes: ['contact.created'], headers: {}, active: true, secrets: [], version: 1, name: 'h', rateLimit: 0, auth: undefined };
    await buckets.routes.put(test.topology.keys.webhook(workspaceId, webhookId), Route.encode(route).finish());
    await routes.sync();
    ofThisTest.add(webhookId);
    return { workspaceId, webhookId };
  }

  /** A webhook id whose tasks go to the same delivery shard as `webhookId`'s. */
  function sameShardWebhookId(webhookId: string): string {
    for (;;) {
      const other = uniqueName('wh');
      if (test.topology.streams.deliver(other) === test.topology.streams.deliver(webhookId)) return other;
    }
  }

  async function publishTasks(workspaceId: string, webhookId: string, ids: readonly string[]): Promise<void> {
    for (const eventId of ids) {
      const task: DeliveryTask = { eventId, workspaceId, webhookId, eventType: 'contact.created', occurredAt: new Date(), body: Buffer.from('{}'), deliveryId: '', retryOfDeliveryId: '', acceptedAt: new Date() };
      await publisher.publish(test.topology.subjects.deliver(workspaceId, webhookId), DeliveryTask.encode(task).finish());
    }
  }

  /**
   * A replica's consumers on the test's connection, with an ack wait of a minute unless told. Tasks an
   * earlier test left in a shard (of a webhook the running test did not make) are acked without reaching
   * `handle`: counted, they made a test wait for a number of tasks it never reached (one shard in 16).
   */
  function replica(
    handle: DeliveryHandler,
    options: { ackWaitMs?: number; onLoopsDown?: (down: number) => void; owns?: (shard: number) => boolean; jsm?: JetStreamManager; js?: JetStreamClient; suspensions?: Suspensions; logger?: Logger; stallCheckMs?: number; recall?: (shard: number, sinceMs: number) => Promise<number> } = {},
  ): DeliveryConsumers {
    return new DeliveryConsumers(
      options.js ?? jetstream(test.nc), options.jsm ?? jsm, publisher, test.topology, routes, options.ackWaitMs ?? 60_000, ofTheTest(handle), options.suspensions ?? new Suspensions(), options.logger ?? logger,
      options.onLoopsDown, options.owns, options.recall, options.stallCheckMs,
    );
  }

  function ofTheTest(handle: DeliveryHandler): DeliveryHandler {
    return async (message, path, maybeAttempted, takenAt) => {
      if (ofThisTest.has(DeliveryTask.decode(message.data).webhookId)) return handle(message, path, maybeAttempted, takenAt);
      message.ack();
      return 'settled';
    };
  }

  /**
   * A handler that records each task as `<event id>:<path>` and acks it, except that the first attempt
   * of `waiter` must wait (as for a retry's delay): recorded as `<id>:<path>:wait`, answered 'park'
   * after `pauseMs`.
   */
  function waitingOnce(waiter: string, seen: string[], pauseMs = 0): DeliveryHandler {
    let waited = false;
    return async (message: TaskMessage, path: TaskPath): Promise<Handled> => {
      const eventId = DeliveryTask.decode(message.data).eventId;
      if (eventId === waiter && !waited) {
        waited = true;
        seen.push(`${eventId}:${path}:wait`);
        if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
        return 'park';
      }
      seen.push(`${eventId}:${path}`);
      message.ack();
      return 'settled';
    };
  }

  /** A handler that records each task's event id (with a label) and acks it. */
  function acking(seen: string[], label = ''): (message: TaskMessage) => Promise<Handled> {
    return async (message) => {
      seen.push(DeliveryTask.decode(message.data).eventId + label);
      message.ack();
      return 'settled';
    };
  }



  it('restarts a shard loop whose consumer vanished, and delivers the later events in order', async () => {
    const t = test.topology;
    const { workspaceId, webhookId } = await activeWebhook();
    const handled: string[] = [];
    const downReports: number[] = [];
    consumers = replica(acking(handled), { ackWaitMs: 5_000, onLoopsDown: (down) => downReports.push(down) });
    await consumers.startAll();
    await publishTasks(workspaceId, webhookId, ['s1', 's2']);
    await waitUntil(() => handled.length === 2, 20_000, 'the first two events');

    // The fault: the shard's consumer disappears under its loop.
    const shard = t.streams.deliverShards.indexOf(t.streams.deliver(webhookId));
    await jsm.consumers.delete(t.streams.deliver(webhookId), t.consumers.shard(shard));
    await waitUntil(() => downReports.length > 0, 20_000, 'readiness to hear of the failed loop');
    await publishTasks(workspaceId, webhookId, ['s3', 's4', 's5']);
    await waitUntil(() => handled.length === 5, 20_000, 'the events published after the fault');
    assert.deepEqual(handled, ['s1', 's2', 's3', 's4', 's5'], 'each event once, in order');
    await waitUntil(() => downReports.at(-1) === 0, 20_000, 'readiness to hear the loop is back');
    assert.deepEqual(downReports, [1, 0]);
    await consumers.stop();
    consumers = undefined;
  });

  it('gives a new owner the tasks still out with a crashed one at once, in order, marked as maybe attempted', async () => {
    const t = test.topology;
    const { workspaceId, webhookId } = await activeWebhook();
    const shard = t.streams.deliverShards.indexOf(t.streams.deliver(webhookId));
    // Replica A takes c1..c3 and hangs in the attempt of c1; then it loses the shard and is never heard of again.
    let aOwns = true;
    let releaseHang!: () => void;
    const hang = new Promise<void>((resolve) => (releaseHang = resolve));
    let aTook = 0;
    const crashed = replica(
      async () => {
        aTook++;
        await hang;
        return 'abandoned';
      },
      { owns: (s) => s !== shard || aOwns },
    );
    await crashed.startAll();
    await publishTasks(workspaceId, webhookId, ['c1', 'c2', 'c3']);
    await waitUntil(() => aTook === 1, 20_000, 'replica A to start attempting c1');
    aOwns = false;

    // Replica B takes the shard: with an ack_wait of a minute, the tasks would otherwise wait that long.
    const seen: string[] = [];
    consumers = replica(async (message, _path, maybeAttempted) => {
      seen.push(`${DeliveryTask.decode(message.data).eventId}:${maybeAttempted ? 'maybe' : 'new'}`);
      message.ack();
      return 'settled';
    });
    await consumers.startAll();
    await publishTasks(workspaceId, webhookId, ['c4']);
    await waitUntil(() => seen.length === 4, 10_000, 'the four events on replica B');
    assert.deepEqual(seen, ['c1:maybe', 'c2:maybe', 'c3:maybe', 'c4:new']);
    releaseHang();
    await crashed.stop();
    await consumers.stop();
    consumers = undefined;
  });

  it('hands a shard over so that the new owner gets the next task at once, not after ack_wait', async () => {
    const t = test.topology;
    const { workspaceId, webhookId } = await activeWebhook();
    const shard = t.streams.deliverShards.indexOf(t.streams.deliver(webhookId));
    const seen: string[] = [];
    // A owns the shard and idles on its pull; then it hands the shard over (a rebalance) and B takes it.
    const a = replica(acking(seen, '@a'));
    await a.acquire([shard]);
    await publishTasks(workspaceId, webhookId, ['h1']);
    await waitUntil(() => seen.length === 1, 20_000, 'h1 on replica A');
    await a.release([shard]);
    consumers = replica(acking(seen, '@b'));
    await consumers.acquire([shard]);
    await publishTasks(workspaceId, webhookId, ['h2', 'h3']);
    // A's pull, still open on the server, must not swallow them until ack_wait (a minute) hands them out again.
    await waitUntil(() => seen.length === 3, 10_000, 'h2 and h3 on replica B');
    assert.deepEqual(seen, ['h1@a', 'h2@b', 'h3@b']);
    await a.stop();
    await consumers.stop();
    consumers = undefined;
  });

  it('hands a shard over only once the server has counted the acks sent, so the new owner does not send an acked task again', async () => {
    const t = test.topology;
    const { workspaceId, webhookId } = await activeWebhook();
    const shard = t.streams.deliverShards.indexOf(t.streams.deliver(webhookId));
    const seen: string[] = [];
    // Replica A's ack of k1 reaches the server 500 ms after A settled the task, as one may when it travels
    // through another server of a cluster: it is on its way when A hands the shard over.
    const ackInTransit = async (message: TaskMessage): Promise<Handled> => {
      seen.push(`${DeliveryTask.decode(message.data).eventId}@a`);
      setTimeout(() => message.ack(), 500);
      return 'settled';
    };
    const a = replica(ackInTransit);
    await a.acquire([shard]);
    await publishTasks(workspaceId, webhookId, ['k1']);
    await waitUntil(() => seen.length === 1, 20_000, 'k1 on replica A');
    await a.release([shard]);
    // B takes the shard once A has let it go, as the lease would: it purges what the server counts as
    // acked and recreates the consumer. Had A not waited for its ack to be counted, k1 would go to B.
    consumers = replica(acking(seen, '@b'));
    await consumers.acquire([shard]);
    await publishTasks(workspaceId, webhookId, ['k2']);
    await waitUntil(() => seen.length >= 2, 10_000, 'k2 on replica B');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(seen, ['k1@a', 'k2@b']);
    await a.stop();
    await consumers.stop();
    consumers = undefined;
  });

  it('parks a lane that must wait together with its later tasks, keeps their order, and unparks once the park is empty (no consumer for the park)', async () => {
    const t = test.topology;
    const { workspaceId, webhookId } = await activeWebhook();
    const seen: string[] = [];
    // p2 must wait once (as a retry would): the lane parks it, and p3..p5 behind it.
    const handle = waitingOnce('p2', seen, 200);
    consumers = replica(handle, { ackWaitMs: 5_000 });
    await consumers.startAll();
    await publishTasks(workspaceId, webhookId, ['p1', 'p2', 'p3', 'p4', 'p5']);
    await waitUntil(() => seen.length === 6, 20_000, 'the five events');
    assert.deepEqual(seen, ['p1:lane', 'p2:lane:wait', 'p2:parked', 'p3:parked', 'p4:parked', 'p5:parked']);

    await waitUntil(() => consumers!.counts().parked === 0, 20_000, 'the emptied park to be left');
    await publishTasks(workspaceId, webhookId, ['p6', 'p7']);
    await waitUntil(() => seen.length === 8, 20_000, 'the events after unparking');
    assert.deepEqual(seen.slice(6), ['p6:lane', 'p7:lane'], 'back in its lane');
    const consumerNames: string[] = [];
    for await (const info of jsm.consumers.list(t.streams.deliver(webhookId))) consumerNames.push(info.name);
    assert.deepEqual(consumerNames, [t.consumers.shard(t.streams.deliverShards.indexOf(t.streams.deliver(webhookId)))], 'the shard consumer only');
    for (const subject of [t.subjects.deliver(workspaceId, webhookId), t.subjects.park(workspaceId, webhookId)]) {
      assert.equal(await jsm.streams.getMessage(t.streams.deliver(webhookId), { last_by_subj: subject }).catch(() => null), null, `nothing left on ${subject}`);
    }
    await consumers.stop();
    consumers = undefined;
  });

  it('drains a busy healthy webhook in its lane, in order and with no park copy, while it blocks no other webhook', async () => {
    const { workspaceId, webhookId } = await activeWebhook();
    const ids = Array.from({ length: 600 }, (_, i) => `h${String(i).padStart(3, '0')}`);
    const seen: string[] = [];
    const handle = async (message: TaskMessage, path: TaskPath): Promise<Handled> => {
      seen.push(`${DeliveryTask.decode(message.data).eventId}:${path}`);
      // An endpoint answering in about a millisecond: the lane holds hundreds of tasks meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 1));
      message.ack();
      return 'settled';
    };
    consumers = replica(handle, { ackWaitMs: 30_000 });
    await consumers.startAll();
    await publishTasks(workspaceId, webhookId, ids);
    await waitUntil(() => seen.length === ids.length, 60_000, () => `the ${ids.length} tasks (${seen.length} so far)`);
    // Before, a lane holding more than 200 tasks was parked: each later task copied to the park and read back.
    assert.deepEqual(seen, ids.map((id) => `${id}:lane`), 'every task through the lane, in order');
    await consumers.stop();
    consumers = undefined;
  });

  it('parks a busy webhook that fills its shard\'s room while another webhook\'s tasks wait behind it', async () => {
    const t = test.topology;
    const busy = await activeWebhook();
    // Another webhook of the same shard.
    let quiet = await activeWebhook();
    while (t.streams.deliver(quiet.webhookId) !== t.streams.deliver(busy.webhookId)) quiet = await activeWebhook();
    const busyIds = Array.from({ length: 5_000 }, (_, i) => `b${String(i).padStart(4, '0')}`);
    const seen: string[] = [];
    const handle = async (message: TaskMessage, path: TaskPath): Promise<Handled> => {
      const task = DeliveryTask.decode(message.data);
      seen.push(`${task.eventId}:${path}`);
      if (task.webhookId === busy.webhookId) await new Promise((resolve) => setTimeout(resolve, 1));
      message.ack();
      return 'settled';
    };
    await publishTasks(busy.workspaceId, busy.webhookId, busyIds);
    await publishTasks(quiet.workspaceId, quiet.webhookId, ['q1', 'q2', 'q3']);
    consumers = replica(handle, { ackWaitMs: 60_000 });
    await consumers.startAll();
    await waitUntil(() => seen.length === busyIds.length + 3, 120_000, () => `every task (${seen.length} so far)`);
    const position = (id: string) => seen.findIndex((entry) => entry.startsWith(`${id}:`));
    // The quiet webhook's tasks were behind 5,000 of the busy one's in the stream, 3,000 past the shard's
    // room of 2,000: kept in its lane, the busy webhook would hold them back until 3,000 of its own were done.
    assert.ok(position('q3') < 1_500, `the quiet webhook's tasks came at ${position('q1')}-${position('q3')} of ${seen.length}, not behind the busy webhook's backlog`);
    assert.deepEqual(seen.filter((entry) => entry.startsWith('b')).map((entry) => entry.split(':')[0]), busyIds, 'the busy webhook in order');
    assert.ok(seen.some((entry) => entry.endsWith(':parked')), 'the busy webhook was parked');
    await consumers.stop();
    consumers = undefined;
  });

  it('moves on from a parked task whose delete went through but whose answer was lost', async () => {
    const { workspaceId, webhookId } = await activeWebhook();
    const seen: string[] = [];
    let waited = false;
    const handle = async (message: TaskMessage, path: TaskPath): Promise<Handled> => {
      const eventId = DeliveryTask.decode(message.data).eventId;
      // The endpoint failed once: the lane parks q1 (as for a retry's delay).
      if (eventId === 'q1' && !waited) {
        waited = true;
        return 'park';
      }
      seen.push(`${eventId}:${path}`);
      message.ack();
      return 'settled';
    };
    // The first delete of a settled parked task is carried out, and its answer lost (a timeout).
    let lost = 0;
    const streams = withReplaced(jsm.streams, {
      deleteMessage: async (stream: string, seq: number, erase?: boolean) => {
        const deleted = await jsm.streams.deleteMessage(stream, seq, erase);
        if (lost === 0) {
          lost++;
          throw timeoutError();
        }
        return deleted;
      },
    });
    const faultyJsm = withReplaced(jsm, { streams });
    consumers = replica(handle, { ackWaitMs: 5_000, jsm: faultyJsm });
    await consumers.startAll();
    await publishTasks(workspaceId, webhookId, ['q1']);
    await waitUntil(() => seen.includes('q1:parked'), 10_000, 'q1 from the park');
    await publishTasks(workspaceId, webhookId, ['q2']);
    // Before the fix the repeated delete got "no message found" every 2 s and the park never advanced.
    await waitUntil(() => seen.length === 2, 10_000, () => `q2 after q1 (seen ${seen.join(', ')})`);
    assert.equal(lost, 1, 'the lost answer was forced once');
    assert.deepEqual(seen.map((s) => s.split(':')[0]), ['q1', 'q2']);
    await consumers.stop();
    consumers = undefined;
  });

  it('removes unread a park copy another tenure stored after this one began, and delivers one stored before it', async () => {
    const { workspaceId, webhookId } = await activeWebhook();
    /** A park copy as an owner makes it (park.ts), published here as that owner would. */
    const parkCopy = async (eventId: string, tenure: string) => {
      const task: DeliveryTask = { eventId, workspaceId, webhookId, eventType: 'contact.created', occurredAt: new Date(), body: Buffer.from('{}'), deliveryId: '', retryOfDeliveryId: '', acceptedAt: new Date() };
      const headers = natsHeaders();
      headers.set(parkedFromHeader, '1');
      headers.set(parkedTenureHeader, tenure);
      await publisher.publish(test.topology.subjects.park(workspaceId, webhookId), DeliveryTask.encode(task).finish(), { headers });
    };
    // Parked by the previous owner before this replica took the shard: delivered.
    await parkCopy('f0', 'previous-owner');
    const seen: string[] = [];
    const handle = waitingOnce('f2', seen);
    consumers = replica(handle, { ackWaitMs: 5_000 });
    await consumers.startAll();
    await waitUntil(() => seen.includes('f0:parked') && consumers!.counts().parked === 0, 10_000, 'the earlier owner\'s park copy delivered');
    await publishTasks(workspaceId, webhookId, ['f1']);
    await waitUntil(() => seen.includes('f1:lane'), 10_000, 'f1 through its lane');
    // The copy of f1 a lapsed owner had parked, stored only now (buffered while it was cut off).
    await parkCopy('f1', 'lapsed-owner');
    // The webhook parks again: before the fence, the late copy was read first and f1 sent again, ahead of f2.
    await publishTasks(workspaceId, webhookId, ['f2']);
    await waitUntil(() => seen.includes('f2:parked'), 10_000, () => `f2 from the park (seen ${seen.join(', ')})`);
    assert.deepEqual(seen, ['f0:parked', 'f1:lane', 'f2:lane:wait', 'f2:parked']);
    assert.equal(await jsm.streams.getMessage(test.topology.streams.deliver(webhookId), { last_by_subj: test.topology.subjects.park(workspaceId, webhookId) }).catch(() => null), null, 'the late copy is gone');
    await consumers.stop();
    consumers = undefined;
  });

  it('recalls the successes since the oldest stored task when the shard\'s old consumer is gone, before any task is handled', async () => {
    const { workspaceId, webhookId } = await activeWebhook();
    const shard = test.topology.streams.deliverShards.indexOf(test.topology.streams.deliver(webhookId));
    // Tasks stored while the shard's consumer is gone (deleted with its stream's other state, say): any of
    // them may have been out with the previous owner.
    await jsm.consumers.delete(test.topology.streams.deliver(webhookId), test.topology.consumers.shard(shard)).catch(() => false);
    // Tasks an earlier test left in this shard would be the oldest: removed first.
    await jsm.streams.purge(test.topology.streams.deliver(webhookId), { filter: test.topology.subjects.deliverShard(shard) });
    const publishedFrom = Date.now();
    await publishTasks(workspaceId, webhookId, ['g1', 'g2']);
    const recalls: { shard: number; sinceMs: number; handledBefore: number }[] = [];
    const seen: string[] = [];
    consumers = replica(acking(seen), { ackWaitMs: 5_000, recall: async (recalled, sinceMs) => {
      recalls.push({ shard: recalled, sinceMs, handledBefore: seen.length });
      return 0;
    } });
    await consumers.acquire([shard]);
    await waitUntil(() => seen.length === 2, 10_000, 'both tasks');
    // Before, there was no recall without an old consumer: a success stored but not acked was sent again.
    assert.equal(recalls.length, 1, 'one recall');
    assert.equal(recalls[0]!.shard, shard);
    assert.equal(recalls[0]!.handledBefore, 0, 'before any task');
    assert.ok(Math.abs(recalls[0]!.sinceMs - publishedFrom) < 2_000, `since the first task's store time (${new Date(recalls[0]!.sinceMs).toISOString()}, published from ${new Date(publishedFrom).toISOString()})`);
    await consumers.stop();
    consumers = undefined;
  });

  it('forgets the suspension of a webhook once it is deleted', async () => {
    const { workspaceId, webhookId } = await activeWebhook();
    const suspensions = new Suspensions();
    consumers = replica(async () => 'settled', { suspensions });
    suspensions.suspend(webhookId, 1);
    await buckets.routes.delete(test.topology.keys.webhook(workspaceId, webhookId));
    await routes.sync();
    assert.equal(suspensions.size, 0, 'the deleted webhook is no longer kept');
    consumers = undefined;
  });

  it('opens a shard once when the connection comes back while its restart waits out its backoff', async () => {
    const t = test.topology;
    const { workspaceId, webhookId } = await activeWebhook();
    const stream = t.streams.deliver(webhookId);
    const shard = t.streams.deliverShards.indexOf(stream);
    let opens = 0;
    const counting = withReplaced(jsm.consumers, {
      add: (name: string, config: Parameters<typeof jsm.consumers.add>[1]) => {
        if (name === stream) opens++;
        return jsm.consumers.add(name, config);
      },
    });
    const countingJsm = withReplaced(jsm, { consumers: counting });
    const handled: string[] = [];
    let resumed = false;
    // The NATS connection "comes back" (resume) right after the failed loop's restart was scheduled.
    consumers = replica(acking(handled), {
      ackWaitMs: 5_000,
      jsm: countingJsm,
      onLoopsDown: (down) => {
        if (down === 1 && !resumed) {
          resumed = true;
          queueMicrotask(() => consumers!.resume());
        }
      },
    });
    await consumers.startAll();
    await publishTasks(workspaceId, webhookId, ['r1']);
    await waitUntil(() => handled.length === 1, 20_000, 'the first event');
    opens = 0;
    await jsm.consumers.delete(stream, t.consumers.shard(shard));
    await waitUntil(() => resumed, 20_000, 'the failed loop');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // Before the fix the resume opened the shard and the restart's timer opened it again.
    assert.equal(opens, 1, 'the shard was opened once after the fault');
    await publishTasks(workspaceId, webhookId, ['r2', 'r3']);
    await waitUntil(() => handled.length === 3, 20_000, 'the events after the fault');
    assert.deepEqual(handled, ['r1', 'r2', 'r3']);
    await consumers.stop();
    consumers = undefined;
  });

  it('ends the handover ack wait once its own acks are counted, with tasks still arriving under load', async () => {
    const t = test.topology;
    const { workspaceId, webhookId } = await activeWebhook();
    const shard = t.streams.deliverShards.indexOf(t.streams.deliver(webhookId));
    const released: { counted: boolean; held: number }[] = [];
    const spy = Object.assign(Object.create(logger) as Logger, {
      debug: (fields: { counted?: boolean; held?: number }, message?: string) => {
        if (message?.startsWith('shard released')) released.push({ counted: fields.counted!, held: fields.held! });
      },
    });
    const seen: string[] = [];
    consumers = replica(acking(seen), { logger: spy });
    await consumers.acquire([shard]);
    // A steady stream of tasks: the shard is released while pulls are being answered.
    let publishing = true;
    const load = (async () => {
      for (let n = 0; publishing; n++) await publishTasks(workspaceId, webhookId, [`l${n}`]);
    })();
    await waitUntil(() => seen.length >= 50, 20_000, 'the load flowing');
    await consumers.release([shard]);
    publishing = false;
    await load;
    // Before the fix the wait counted only the tasks the lanes held, so it ran its whole 2 s whenever
    // tasks were received or handed out after the stop.
    assert.deepEqual(released.map((r) => r.counted), [true], `the wait ended on the server's count (${JSON.stringify(released)})`);
    await consumers.stop();
    consumers = undefined;
  });

  it('recreates a shard consumer that stalls: tasks wait, none is handed out', async () => {
    const { workspaceId, webhookId } = await activeWebhook();
    const handled: string[] = [];
    const js = jetstream(test.nc);
    // The first consume of the shard is a pull that never receives anything (lost with the server that
    // held it, or a consumer stuck after a leader change); the loop itself does not end.
    let stalled = 0;
    const consumersApi = withReplaced(js.consumers, {
      getConsumerFromInfo: (info: Parameters<typeof js.consumers.getConsumerFromInfo>[0]) => {
        const consumer = js.consumers.getConsumerFromInfo(info);
        if (stalled > 0) return consumer;
        stalled++;
        return withReplaced(consumer, {
          consume: async () => {
            let stop = () => {};
            const stopped = new Promise<void>((resolve) => (stop = resolve));
            return {
              stop,
              [Symbol.asyncIterator]: () => ({ next: async () => (await stopped, { done: true, value: undefined }) }),
            } as unknown as Awaited<ReturnType<typeof consumer.consume>>;
          },
        });
      },
    });
    consumers = replica(acking(handled), { js: withReplaced(js, { consumers: consumersApi }), stallCheckMs: 200 });
    const shard = test.topology.streams.deliverShards.indexOf(test.topology.streams.deliver(webhookId));
    // A task an earlier test left in the same shard is handed out first and not counted (replica()). This
    // test failed once in seven CI runs when the webhook landed in the shard the test before left tasks in.
    await publishTasks(workspaceId, sameShardWebhookId(webhookId), ['leftover']);
    await consumers.acquire([shard]);
    await publishTasks(workspaceId, webhookId, ['w1', 'w2']);
    // Before the stall watch the tasks waited until the shard moved to another replica.
    await waitUntil(() => handled.length === 2, 10_000, () => `the tasks after the stalled consumer was recreated (handled ${handled.join(', ')})`);
    assert.equal(stalled, 1);
    assert.deepEqual(handled, ['w1', 'w2']);
    await consumers.stop();
    consumers = undefined;
  });

  it('still knows what it settled in a shard it lost and took back: a task handed out again after a lost ack is not sent again', async () => {
    const t = test.topology;
    const { workspaceId, webhookId } = await activeWebhook();
    const shard = t.streams.deliverShards.indexOf(t.streams.deliver(webhookId));
    const sent: string[] = [];
    // The ack of m1 is lost (as when the consumer leader that received it dies before it is replicated).
    // Tasks an earlier test left in the same shard are acked and not counted.
    const handle = async (message: TaskMessage): Promise<Handled> => {
      const task = DeliveryTask.decode(message.data);
      if (task.webhookId === webhookId) sent.push(task.eventId);
      if (task.eventId !== 'm1') message.ack();
      return 'settled';
    };
    consumers = replica(handle, { ackWaitMs: 1_000 });
    await consumers.acquire([shard]);
    await publishTasks(workspaceId, webhookId, ['m1', 'm2']);
    await waitUntil(() => sent.length === 2, 10_000, 'both tasks');
    // The lease lapses and comes back to this replica: the shard is released and taken again.
    await consumers.release([shard]);
    await consumers.acquire([shard]);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    // Before, a re-acquired shard started with an empty memory and m1 went to the endpoint again.
    assert.deepEqual(sent, ['m1', 'm2']);
    await consumers.stop();
    consumers = undefined;
  });
});

// How the owner of a delivery shard (ownership.ts) consumes it: one consumer per shard for new tasks,
// a lane per webhook in memory, and a park per webhook that retries or falls behind. The rules:
// 1. Shard consumer. Each delivery stream has one durable consumer of its new tasks (`shard_<n>`),
//    pulled only by the shard's owner, in stream order, up to shardMaxAckPending tasks held at once.
//    Shard tasks are never nak'ed: a nak would let the webhook's later tasks overtake them.
// 2. Lanes. Tasks are queued per webhook in the order the consumer handed them out; a lane attempts
//    one task at a time, so there is one event in flight per webhook. A task handed out again while
//    its lane still holds it (ack_wait passed) is the same task: the lane keeps one copy, acking through
//    the newest delivery.
// 3. Parking. A lane whose task must wait (a retry's delay, an unreadable record), or that holds more
//    than laneMaxHeld tasks, or whose oldest waiting task has waited half of ack_wait (a slow endpoint),
//    is parked: its tasks move, in order, to the webhook's park subject in the same stream (each stored
//    there before it is acked here; the copy's id is its shard sequence, so a move repeated after a crash
//    is stored once), and so does every later task of that webhook while it stays parked. A hanging
//    endpoint thus holds only its own tasks, never the shard's limit.
// 4. The park has no consumer: the owner reads the webhook's oldest parked task from the stream (a get by
//    subject), attempts it, and deletes it once settled; a retry's delay is a timer in memory. A parked
//    webhook costs the servers nothing while it waits, however many there are. When no parked task is
//    left, the webhook is unparked and its new tasks go through its lane again. Moves to the park and
//    the unparking run one after another per webhook, so no task can slip between them.
// 5. Handing a shard over. Its lanes stop after their attempts in flight, and the replica waits (up to
//    ackSettleMs) until the server has counted the acks it sent, before the lease is given up.
//    Taking a shard. The new owner removes earlier versions' per-webhook consumers of the shard (their
//    filters would overlap the shard consumer's), finds the parked webhooks (park subjects holding tasks)
//    and starts reading their parks, then consumes the shard through a recreated consumer: tasks handed out
//    to the previous owner and not acked (it crashed, or their acks were lost) come back at once and in
//    order, and a pull the previous loop left open on the server (a pull cannot be withdrawn, and in a
//    cluster the server keeps it after its requester left) receives nothing more. The only repeat is the
//    attempt that was in flight on a crashed replica. Tasks the old consumer had handed out are marked as
//    maybe attempted, so their attempt numbers continue from the log (dispatch.ts); when the old consumer
//    still had tasks out, or parks hold tasks, the new owner first recalls the successes recently stored
//    in the shard's record batches (record-batches.ts rule 4). Before recreating,
//    tasks at or below the old consumer's ack floor are purged: they were acked, and one the server
//    failed to remove (seen in a cluster across leader changes) would otherwise be sent again, long
//    after its successors.
// 6. Restarts. A shard loop that fails (its consumer vanished, say), or any shard loop after the NATS
//    connection comes back, starts again after a backoff (200 ms doubling to 10 s) with its consumer
//    recreated (tasks lost in transit would otherwise come back only after ack_wait, behind later ones);
//    tasks still held are matched by their sequence (rule 2), and a task settled here recently is acked
//    again instead of attempted twice. A handler that throws, or a park read that fails, keeps its task
//    first and tries again after the backoff. Meanwhile readiness reports what is down. Lanes are removed
//    once empty and unparked; a shard's lanes go with the shard.
// 7. Disabled or deleted webhooks. A task taken for a webhook that is not deliverable is dropped with a
//    record by the handler. A parked webhook that becomes undeliverable has its park read at once, so a
//    task waiting for its retry delay is dropped without waiting. Tasks queued while no replica owned the
//    shard are dropped when its new owner reaches them.
import type { Route } from '@webhooks/contracts';
import {
  ensureConsumer,
  JetStreamApiError,
  natsHeaders,
  parkedFromHeader,
  shardConsumerConfig,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type JetStreamPublisher,
  type JsMsg,
  type MsgHdrs,
  type RouteChange,
  type StoredMsg,
  type RoutingTable,
  type Topology,
} from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import type { Suspensions } from './breaker.js';
import type { Handled, TaskMessage, TaskPath } from './dispatch.js';
import { dispatcherMetrics } from './metrics.js';
import { retryInPlace } from './retry-in-place.js';

/** Handles one task (dispatch.ts). */
export type DeliveryHandler = (message: TaskMessage, path: TaskPath, maybeAttempted?: boolean) => Promise<Handled>;

/** Tasks of one shard held at once by its owner (rule 1): the bound on a replica's memory for tasks. */
export const shardMaxAckPending = 2_000;
/** Tasks one lane may hold before its later ones are parked (rule 3). */
export const laneMaxHeld = 200;
const shardPullBatch = 256;
/** Sequences of tasks settled here recently, per shard (rule 6). */
const settledMemory = 4_096;
const restartInitialMs = 200;
/** How often a lane that may not act (its lease's renewal is late) looks again. */
const ownershipPollMs = 100;
/** How long a released shard waits for the server to count the acks it sent. */
const ackSettleMs = 2_000;
const restartMaxMs = 10_000;
const moveRetryInitialMs = 100;
const moveRetryMaxMs = 2_000;
/**
 * An idle consumer's pull stays open this long and the server confirms it every idleHeartbeatMs (the
 * client's defaults). With a consumer per shard rather than per webhook, idleness costs next to nothing.
 */
const idlePullMs = 30_000;
const idleHeartbeatMs = 15_000;
/** Consumer creations and deletions in flight at once, so a replica taking many shards does not flood JetStream's API. */
const maxConsumerOperations = 16;

/** Runs at most `slots` of the given operations at a time, in the order they were asked for. */
function limiter(slots: number) {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(operation: () => Promise<T>): Promise<T> => {
    if (running >= slots) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    try {
      return await operation();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

/** Remembers the last `capacity` numbers added (rule 6). */
class RecentSet {
  private readonly items = new Set<number>();
  constructor(private readonly capacity: number) {}
  add(value: number): void {
    this.items.add(value);
    if (this.items.size > this.capacity) this.items.delete(this.items.values().next().value!);
  }
  has(value: number): boolean {
    return this.items.has(value);
  }
}

interface Loop {
  done: Promise<void>;
  stop(): void;
  stopped: boolean;
}

interface HeldTask {
  readonly seq: number;
  /** The newest delivery of this task: acks go through it (rule 2). */
  message: JsMsg;
  readonly takenAt: number;
}

/** The reader of one webhook's park (rule 4). */
interface ParkReader {
  stopped: boolean;
  /** Ends the pause before the next read (a retry's delay, a backoff) at once. */
  wake(): void;
  done: Promise<void>;
}

interface Lane {
  readonly shard: number;
  readonly workspaceId: string;
  readonly webhookId: string;
  readonly held: HeldTask[];
  readonly bySeq: Map<number, HeldTask>;
  running: boolean;
  parked: boolean;
  /** Moves to the park and unparking, one after another (rule 4). */
  steps: Promise<void>;
  park?: ParkReader;
  failures: number;
}

interface Shard {
  loop?: Loop;
  readonly settled: RecentSet;
  failures: number;
  /**
   * Tasks up to this stream sequence were handed out by a consumer since recreated: JetStream hands them
   * out again as if for the first time, but they may have been attempted (their records tell).
   */
  handedOutUpTo: number;
  /** Whether the shard's recent successes were recalled since this replica took it (rule 5). */
  recalled: boolean;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class DeliveryConsumers {
  private readonly shards = new Map<number, Shard>();
  private readonly lanes = new Map<string, Lane>();
  /** What is down and being restarted, for readiness: `shard:<n>`, `park:<webhook>`, `lane:<webhook>`. */
  private readonly down = new Set<string>();
  private readonly consumerOperation = limiter(maxConsumerOperations);
  private closed = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly publisher: JetStreamPublisher,
    private readonly topology: Topology,
    private readonly routes: RoutingTable,
    private readonly ackWaitMs: number,
    private readonly handle: DeliveryHandler,
    private readonly suspensions: Suspensions,
    private readonly logger: Logger,
    /** Told how many loops are down whenever that changes (readiness). */
    private readonly onLoopsDown: (down: number) => void = () => {},
    /** Whether this replica owns a delivery shard now (ownership.ts); every shard without ownership. */
    private readonly owns: (shard: number) => boolean = () => true,
    /** Recalls a shard's recently stored successes (dispatch.ts); returns how many. */
    private readonly recall: (shard: number) => Promise<number> = async () => 0,
  ) {}

  /** Follows every shard (a replica without ownership, e.g. in tests). */
  async startAll(): Promise<void> {
    await this.acquire(this.topology.streams.deliverShards.map((_, shard) => shard));
  }

  /** Starts consuming newly owned shards (rule 5). */
  async acquire(shards: readonly number[]): Promise<void> {
    await Promise.all(
      shards.map((shard) => {
        if (this.closed || this.shards.has(shard)) return;
        this.shards.set(shard, { settled: new RecentSet(settledMemory), failures: 0, handedOutUpTo: 0, recalled: false });
        return this.openShard(shard);
      }),
    );
  }

  /** Stops consuming these shards; resolves once none of their attempts runs here. */
  async release(shards: readonly number[]): Promise<void> {
    await Promise.all(shards.map((shard) => this.closeShard(shard)));
  }

  /** After the NATS connection came back: every loop starts again (rule 6). */
  resume(): void {
    if (this.closed) return;
    for (const [shard, state] of this.shards) {
      state.loop?.stop();
      if (state.loop) state.loop.stopped = true;
      void this.openShard(shard);
    }
    // Park readers need nothing: their reads failed while NATS was away, and they try again by themselves.
  }

  /** Shards consumed here, lanes in memory, and of those the parked ones. */
  counts(): { shards: number; lanes: number; parked: number } {
    let parked = 0;
    for (const lane of this.lanes.values()) if (lane.parked) parked++;
    return { shards: this.shards.size, lanes: this.lanes.size, parked };
  }

  onRouteChange(change: RouteChange): void {
    if (change.kind === 'webhook') this.refresh(change.workspaceId, change.webhookId);
  }

  /** Re-reads one webhook's state, e.g. after a trip suspended it (rule 7). */
  refresh(_workspaceId: string, webhookId: string): void {
    const lane = this.lanes.get(webhookId);
    if (this.closed || !lane?.parked || this.deliverable(this.routes.route(lane.workspaceId, lane.webhookId))) return;
    lane.park?.wake();
  }

  /** Stops taking new deliveries and waits for the attempts in progress. */
  async stop(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.shards.keys()].map((shard) => this.closeShard(shard)));
  }

  private deliverable(route: Route | undefined): boolean {
    return !!route?.active && !this.suspensions.isSuspended(route);
  }

  /** Whether this shard is consumed here (acquired, not yet released). */
  private consuming(shard: number): boolean {
    return !this.closed && this.shards.has(shard);
  }

  /**
   * Whether a task of this shard may be started or acked now (fencing, ownership.ts): waits while the
   * lease is not known to be valid (a renewal running late), and is false once the shard is released.
   */
  private async mayAct(shard: number): Promise<boolean> {
    while (this.consuming(shard)) {
      if (this.owns(shard)) return true;
      await sleep(ownershipPollMs);
    }
    return false;
  }

  private stream(shard: number): string {
    return this.topology.streams.deliverShards[shard]!;
  }

  private markDown(key: string): void {
    if (this.down.has(key)) return;
    this.down.add(key);
    this.onLoopsDown(this.down.size);
  }

  private markUp(key: string): void {
    if (this.down.delete(key)) this.onLoopsDown(this.down.size);
  }

  private backoff(failures: number): number {
    return Math.min(restartMaxMs, restartInitialMs * 2 ** Math.max(0, failures - 1));
  }

  private async closeShard(shard: number): Promise<void> {
    const state = this.shards.get(shard);
    if (!state) return;
    this.shards.delete(shard);
    this.markUp(`shard:${shard}`);
    if (state.loop) {
      state.loop.stopped = true;
      state.loop.stop();
    }
    const lanes = [...this.lanes.values()].filter((lane) => lane.shard === shard);
    // Lanes stop before their next task; what they still hold stays unacked for the next owner (rule 5).
    await Promise.all(lanes.map(async (lane) => {
      await lane.steps;
      while (lane.running) await sleep(10);
      await this.stopPark(lane);
      this.markUp(`lane:${lane.webhookId}`);
      this.markUp(`park:${lane.webhookId}`);
      if (this.lanes.get(lane.webhookId) === lane) this.lanes.delete(lane.webhookId);
    }));
    await state.loop?.done;
    // The acks sent are counted by the server before the lease goes: the next owner purges up to the ack
    // floor it reads and recreates the consumer, so an ack still on its way would mean a repeat, sent
    // after later tasks. What the lanes still hold was never acked and stays pending.
    const held = lanes.reduce((count, lane) => count + lane.held.length, 0);
    const deadline = Date.now() + ackSettleMs;
    while (Date.now() < deadline) {
      const info = await this.jsm.consumers.info(this.stream(shard), this.topology.consumers.shard(shard)).catch(() => undefined);
      if (!info || info.num_ack_pending <= held) break;
      await sleep(ownershipPollMs / 2);
    }
  }

  /** Opens (or reopens, recreating its consumer) one shard's consumer, after finding its parks (rule 5). */
  private async openShard(shard: number): Promise<void> {
    const state = this.shards.get(shard);
    // Only while the lease holds: a replica whose renewal runs late must not recreate its successor's consumer.
    if (!state || !(await this.mayAct(shard))) return;
    try {
      const stream = this.stream(shard);
      const name = this.topology.consumers.shard(shard);
      let existing: ConsumerInfo | undefined;
      const parked = new Map<string, string>();
      for await (const info of this.jsm.consumers.list(stream)) {
        const consumer = info.name;
        if (consumer === name) existing = info;
        else if (consumer.startsWith(this.topology.consumers.legacyDeliveryPrefix)) await this.consumerOperation(() => this.deleteConsumer(shard, consumer));
      }
      const { state: streamState } = await this.jsm.streams.info(stream, { subjects_filter: this.topology.subjects.parkShard(shard) });
      for (const subject of Object.keys(streamState.subjects ?? {})) {
        const [, , , workspaceId, webhookId] = subject.split('.');
        if (workspaceId && webhookId) parked.set(webhookId, workspaceId);
      }
      if (!state.recalled && ((existing?.num_ack_pending ?? 0) > 0 || parked.size > 0)) {
        const started = Date.now();
        const recalled = await this.recall(shard);
        state.recalled = true;
        this.logger.info({ shard, recalled, durationMs: Date.now() - started }, 'recalled the successes recently stored in the shard');
      }
      for (const [webhookId, workspaceId] of parked) {
        const lane = this.laneOf(shard, workspaceId, webhookId);
        if (lane.parked) continue;
        lane.parked = true;
        this.startPark(lane);
      }
      if (!this.owns(shard)) throw new Error(`the lease of shard ${shard} is not confirmed; opening it later`);
      // Recreated whenever it exists: a pull the previous loop left open (in a cluster the server does not
      // notice that its requester went away, and a pull cannot be withdrawn) would otherwise receive tasks
      // nobody reads, handed out again only after ack_wait, behind later ones.
      if (existing) {
        state.handedOutUpTo = Math.max(state.handedOutUpTo, existing.delivered.stream_seq);
        // Every task up to the old consumer's ack floor was acked; one still stored there is a leftover
        // the server did not remove (seen in a cluster across leader changes), never to be sent again.
        const floor = existing.ack_floor.stream_seq;
        if (floor > 0) await this.consumerOperation(() => this.jsm.streams.purge(stream, { filter: this.topology.subjects.deliverShard(shard), seq: floor + 1 }));
        await this.consumerOperation(() => this.deleteConsumer(shard, name));
      }
      const info = await this.consumerOperation(() => ensureConsumer(this.jsm, stream, shardConsumerConfig(this.topology, shard, this.ackWaitMs, shardMaxAckPending)));
      if (!this.consuming(shard) || this.shards.get(shard) !== state) return;
      const messages = await this.js.consumers.getConsumerFromInfo(info).consume({ max_messages: shardPullBatch, expires: idlePullMs, idle_heartbeat: idleHeartbeatMs, abort_on_missing_resource: true });
      const loop: Loop = { stopped: false, done: Promise.resolve(), stop: () => messages.stop() };
      state.loop = loop;
      loop.done = (async () => {
        for await (const message of messages) {
          // Shard tasks are never nak'ed (rule 1): one not taken stays with the consumer for the next loop or
          // owner. While a lease renewal runs late, tasks are still taken; lanes wait before acting (mayAct).
          if (loop.stopped || !this.consuming(shard)) continue;
          this.take(shard, state, message);
        }
      })().then(
        () => (loop.stopped ? undefined : this.restartShard(shard, state, new Error('the consume iterator ended'))),
        (error: unknown) => (loop.stopped ? undefined : this.restartShard(shard, state, error)),
      );
      state.failures = 0;
      this.markUp(`shard:${shard}`);
    } catch (error) {
      this.restartShard(shard, state, error);
    }
  }

  private restartShard(shard: number, state: Shard, error: unknown): void {
    if (this.shards.get(shard) !== state || this.closed) return;
    if (state.loop) {
      state.loop.stopped = true;
      state.loop.stop();
    }
    state.failures++;
    const delayMs = this.backoff(state.failures);
    this.markDown(`shard:${shard}`);
    dispatcherMetrics.deliveryLoopRestarts.add(1);
    this.logger.error({ err: error, shard, restartInMs: delayMs }, 'delivery shard loop ended with an error; restarting it');
    setTimeout(() => void this.openShard(shard), delayMs).unref();
  }

  private laneOf(shard: number, workspaceId: string, webhookId: string): Lane {
    let lane = this.lanes.get(webhookId);
    if (!lane) {
      lane = { shard, workspaceId, webhookId, held: [], bySeq: new Map(), running: false, parked: false, steps: Promise.resolve(), failures: 0 };
      this.lanes.set(webhookId, lane);
    }
    return lane;
  }

  /** A task from the shard consumer (rules 2 and 3). */
  private take(shard: number, state: Shard, message: JsMsg): void {
    const [, , , workspaceId, webhookId] = message.subject.split('.');
    if (!workspaceId || !webhookId) {
      this.logger.error({ subject: message.subject, seq: message.seq }, 'delivery task on an unexpected subject terminated');
      message.term();
      return;
    }
    if (state.settled.has(message.seq)) {
      message.ack();
      return;
    }
    const lane = this.laneOf(shard, workspaceId, webhookId);
    const known = lane.bySeq.get(message.seq);
    if (known) {
      known.message = message;
      return;
    }
    const task: HeldTask = { seq: message.seq, message, takenAt: Date.now() };
    lane.held.push(task);
    lane.bySeq.set(task.seq, task);
    if (lane.parked) void this.step(lane, () => this.moveToPark(lane));
    else if (!lane.running) void this.run(lane);
  }

  /** Attempts the lane's tasks one at a time, until it is empty, parked, or the shard is no longer consumed here. */
  private async run(lane: Lane): Promise<void> {
    lane.running = true;
    let abandoned = false;
    try {
      while (lane.held.length > 0 && !lane.parked && this.consuming(lane.shard)) {
        if (!(await this.mayAct(lane.shard))) break;
        const head = lane.held[0]!;
        const message = head.message;
        let handled: Handled;
        try {
          handled = await this.handle(message, 'lane', head.seq <= (this.shards.get(lane.shard)?.handedOutUpTo ?? 0));
        } catch (error) {
          lane.failures++;
          const delayMs = this.backoff(lane.failures);
          this.markDown(`lane:${lane.webhookId}`);
          dispatcherMetrics.deliveryLoopRestarts.add(1);
          this.logger.error({ err: error, webhookId: lane.webhookId, workspaceId: lane.workspaceId, retryInMs: delayMs }, 'delivery failed with an error; trying the task again');
          head.message.working();
          await sleep(delayMs);
          head.message.working();
          continue;
        }
        if (lane.failures > 0) {
          lane.failures = 0;
          this.markUp(`lane:${lane.webhookId}`);
        }
        if (handled === 'abandoned') {
          abandoned = true;
          return;
        }
        if (handled === 'park') {
          await this.park(lane);
          return;
        }
        // Settled through a delivery the shard consumer has since replaced: settle the newest one too.
        if (head.message !== message) head.message.ack();
        this.forget(lane, head);
        const next = lane.held[0];
        if (next && (lane.held.length > laneMaxHeld || Date.now() - next.takenAt > this.ackWaitMs / 2)) {
          this.logger.info({ webhookId: lane.webhookId, held: lane.held.length, waitedMs: Date.now() - next.takenAt }, 'webhook falling behind; its tasks are parked');
          await this.park(lane);
          return;
        }
      }
    } finally {
      lane.running = false;
      // A task taken while this run was finishing (e.g. just after an unpark) starts a new run.
      if (!abandoned && lane.held.length > 0 && !lane.parked && this.consuming(lane.shard) && this.lanes.get(lane.webhookId) === lane) queueMicrotask(() => void this.runIfIdle(lane));
      else this.dropIfIdle(lane);
    }
  }

  private runIfIdle(lane: Lane): void {
    if (!lane.running && !lane.parked && lane.held.length > 0) void this.run(lane);
  }

  private forget(lane: Lane, task: HeldTask): void {
    lane.held.shift();
    lane.bySeq.delete(task.seq);
    this.shards.get(lane.shard)?.settled.add(task.seq);
  }

  private dropIfIdle(lane: Lane): void {
    if (!lane.running && !lane.parked && lane.held.length === 0 && this.lanes.get(lane.webhookId) === lane) this.lanes.delete(lane.webhookId);
  }

  /** Runs one parking step of a lane after the ones before it (rule 4). */
  private step(lane: Lane, work: () => Promise<void>): Promise<void> {
    const next = lane.steps.then(work).catch((error: unknown) => {
      this.logger.error({ err: error, webhookId: lane.webhookId }, 'parking step failed');
    });
    lane.steps = next;
    return next;
  }

  private park(lane: Lane): Promise<void> {
    lane.parked = true;
    this.logger.debug({ webhookId: lane.webhookId, held: lane.held.length }, 'webhook parked');
    return this.step(lane, async () => {
      await this.moveToPark(lane);
      this.startPark(lane);
    });
  }

  /** Moves every task the lane holds to its park, in order: each stored there before it is acked here. */
  private async moveToPark(lane: Lane): Promise<void> {
    if (!lane.parked) {
      // Unparked in the meantime: what was taken since goes through the lane.
      if (!lane.running) void this.run(lane);
      return;
    }
    const subject = this.topology.subjects.park(lane.workspaceId, lane.webhookId);
    while (lane.held.length > 0 && (await this.mayAct(lane.shard))) {
      const task = lane.held[0]!;
      await retryInPlace(() => this.publisher.publish(subject, task.message.data, { msgID: `parked.${task.seq}`, headers: parkedHeaders(task.message.headers, task.seq) }), {
        keepAlive: () => task.message.working(),
        initialDelayMs: moveRetryInitialMs,
        maxDelayMs: moveRetryMaxMs,
        givenUp: () => !this.consuming(lane.shard),
        onFirstFailure: (error) => this.logger.warn({ err: error, webhookId: lane.webhookId, seq: task.seq }, 'parking a task failed; retrying'),
      });
      // Acked only while the lease holds; otherwise the next owner finds the task and its stored copy once.
      if (!(await this.mayAct(lane.shard))) return;
      task.message.ack();
      this.forget(lane, task);
    }
  }

  /** Starts reading a parked lane's park, unless a reader runs (rule 4). */
  private startPark(lane: Lane): void {
    if (!lane.parked || lane.park || !this.consuming(lane.shard)) return;
    let wake = () => {};
    const reader: ParkReader = { stopped: false, wake: () => wake(), done: Promise.resolve() };
    const pause = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    lane.park = reader;
    this.logger.debug({ webhookId: lane.webhookId }, 'park reader started');
    reader.done = this.readPark(lane, reader, pause).finally(() => {
      this.logger.debug({ webhookId: lane.webhookId, parked: lane.parked, stopped: reader.stopped }, 'park reader ended');
      if (lane.park === reader) lane.park = undefined;
    });
  }

  private async readPark(lane: Lane, reader: ParkReader, pause: (ms: number) => Promise<void>): Promise<void> {
    const stream = this.stream(lane.shard);
    const subject = this.topology.subjects.park(lane.workspaceId, lane.webhookId);
    const reads = new Map<number, number>();
    const failed = async (error: unknown, what: string) => {
      lane.failures++;
      const delayMs = this.backoff(lane.failures);
      this.markDown(`park:${lane.webhookId}`);
      dispatcherMetrics.deliveryLoopRestarts.add(1);
      this.logger.error({ err: error, webhookId: lane.webhookId, workspaceId: lane.workspaceId, retryInMs: delayMs }, `${what}; trying again`);
      await pause(delayMs);
    };
    while (!reader.stopped && lane.parked && (await this.mayAct(lane.shard))) {
      let stored: StoredMsg | null;
      try {
        stored = await this.oldestParked(stream, subject);
      } catch (error) {
        await failed(error, 'reading a parked task failed');
        continue;
      }
      if (!stored) {
        // Nothing parked: unpark, as a step, so no move runs in between (rule 4).
        await this.step(lane, async () => {
          if (!lane.parked || (await this.oldestParked(stream, subject))) return;
          lane.parked = false;
          if (lane.park === reader) lane.park = undefined;
          this.logger.debug({ webhookId: lane.webhookId, held: lane.held.length, running: lane.running }, 'webhook unparked');
          this.markUp(`park:${lane.webhookId}`);
          if (lane.held.length > 0 && !lane.running) void this.run(lane);
          else this.dropIfIdle(lane);
        });
        continue;
      }
      const count = (reads.get(stored.seq) ?? 0) + 1;
      reads.clear();
      reads.set(stored.seq, count);
      const task = new ParkedTask(stored, count);
      let handled: Handled;
      try {
        handled = await this.handle(task, 'parked');
      } catch (error) {
        await failed(error, 'a parked delivery failed with an error');
        continue;
      }
      if (task.removed) {
        try {
          // Retried in place: read again, a delivered task would be sent again.
          await retryInPlace(() => this.jsm.streams.deleteMessage(stream, stored.seq, false), {
            keepAlive: () => {},
            initialDelayMs: moveRetryInitialMs,
            maxDelayMs: moveRetryMaxMs,
            givenUp: () => reader.stopped || !this.consuming(lane.shard),
            onFirstFailure: (error) => this.logger.warn({ err: error, webhookId: lane.webhookId, seq: stored.seq }, 'removing a settled parked task failed; retrying'),
          });
        } catch {
          return;
        }
      }
      if (lane.failures > 0) {
        lane.failures = 0;
        this.markUp(`park:${lane.webhookId}`);
      }
      if (handled === 'handed-back') await pause(task.pauseMs);
    }
  }

  /** The webhook's oldest parked task, or null. */
  private async oldestParked(stream: string, subject: string): Promise<StoredMsg | null> {
    // NATS 2.9 answers "next by subject" from the stream's API; the client's types know it only for direct gets.
    return this.jsm.streams.getMessage(stream, { next_by_subj: subject, seq: 0 } as unknown as { seq: number });
  }

  private async stopPark(lane: Lane): Promise<void> {
    const reader = lane.park;
    if (!reader) return;
    lane.park = undefined;
    reader.stopped = true;
    reader.wake();
    await reader.done;
  }

  private async deleteConsumer(shard: number, name: string): Promise<void> {
    await this.jsm.consumers.delete(this.stream(shard), name).catch((error: unknown) => {
      if (!(error instanceof JetStreamApiError && error.status === 404)) throw error;
    });
  }
}

/** A parked task read from its stream: ack and term remove it (once the handler returns), nak pauses the reader. */
class ParkedTask implements TaskMessage {
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
  readonly seq: number;
  readonly info: { readonly deliveryCount: number };
  removed = false;
  pauseMs = 0;

  constructor(stored: StoredMsg, reads: number) {
    this.data = stored.data;
    this.headers = stored.header;
    this.seq = stored.seq;
    this.info = { deliveryCount: reads };
  }

  ack(): void {
    this.removed = true;
  }

  term(): void {
    this.removed = true;
  }

  nak(delayMs = 0): void {
    this.pauseMs = delayMs;
  }

  working(): void {}
}

/** A parked copy keeps the task's own headers (its trace context), not its stream's bookkeeping ones. */
function parkedHeaders(original: MsgHdrs | undefined, seq: number): MsgHdrs {
  const h = natsHeaders();
  if (original) {
    for (const key of original.keys()) {
      if (key.toLowerCase().startsWith('nats-')) continue;
      for (const value of original.values(key)) h.append(key, value);
    }
  }
  h.set(parkedFromHeader, String(seq));
  return h;
}

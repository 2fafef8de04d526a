// The consumer of each delivery shard this replica owns (ownership.ts): its lifecycle and its consume
// loop. The rules:
// 1. Each delivery stream has one durable consumer of its new tasks (`shard_<n>`), pulled only by the
//    shard's owner, in stream order, up to shardMaxAckPending tasks held at once (the bound on a
//    replica's memory for tasks). Shard tasks are never nak'ed: a nak would let the webhook's later tasks
//    overtake them. Each task goes to its webhook's lane (lanes.ts).
// 2. Taking a shard. The new owner removes earlier versions' per-webhook consumers of the shard (their
//    filters would overlap the shard consumer's), finds the parked webhooks (park subjects holding tasks)
//    and starts reading their parks, then consumes the shard through a recreated consumer: tasks handed
//    out to the previous owner and not acked (it crashed, or their acks were lost) come back at once and
//    in order, and a pull the previous loop left open on the server (a pull cannot be withdrawn, and in a
//    cluster the server keeps it after its requester left) receives nothing more. The only repeat is the
//    attempt that was in flight on a crashed replica. Tasks the old consumer had handed out are marked as
//    maybe attempted, so their attempt numbers continue from the log (dispatch.ts). When tasks may have
//    been out with a predecessor (the old consumer has tasks out, or it is gone and tasks are stored), the
//    new owner first recalls the successes stored in the shard's record batches since the server's store
//    time of the oldest such task: after the old consumer's ack floor, or the oldest stored at all when
//    there is no old consumer (record-batches.ts rule 4). Server time against server time, and however
//    long ago: a success of a task still stored was stored after the task. Parked tasks need no recall:
//    their successes are single records on their webhook's subject (dispatch.ts). Before recreating, tasks at or below the
//    old consumer's ack floor are purged: they were acked, and one the server failed to remove (seen in a
//    cluster across leader changes) would otherwise be sent again, long after its successors.
// 3. Handing a shard over. Its lanes stop after their attempts in flight, and the replica waits (up to
//    ackSettleMs) until the server has counted the acks it sent, before the lease is given up.
// 4. Restarts. A shard loop that fails (its consumer vanished, say), or any shard loop after the NATS
//    connection comes back, starts again after a backoff (loop-health.ts) with its consumer recreated
//    (tasks lost in transit would otherwise come back only after ack_wait, behind later ones); tasks
//    still held are matched by their sequence (lanes.ts rule 2). One open runs at a time per shard: a
//    resume during a restart's backoff replaces the pending restart, and an open overtaken by a later one
//    gives way before it consumes.
// 5. Tasks queued while no replica owned the shard are dropped by the dispatch when its new owner reaches
//    them, if their webhook is no longer deliverable.
// 6. Stall watch. Every stallCheckMs the owner reads each open shard consumer's state; a consumer that has
//    tasks waiting (num_pending), room to hand them out (below its max_ack_pending), and has handed out
//    nothing since the previous look (2 s: a live consumer hands out within milliseconds) is stalled (seen on NATS 2.9 after a consumer
//    leader change, and when a pull is lost with the server that held it): it is recreated, as a restart
//    is (rule 4), with a log line that says why.
// 7. Tenure. Each acquisition of a shard here is a tenure with a fresh id; its first open reads the
//    stream's last sequence as the tenure's barrier, before anything of the tenure is written (park.ts
//    rule 6).
// Eviction: a shard's state, lanes and park readers go when the shard is released.
import {
  ensureConsumer,
  JetStreamApiError,
  shardConsumerConfig,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type Topology,
} from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import { limiter, RecentSet, sleep } from './concurrency.js';
import { ownershipPollMs, type ShardFence } from './fence.js';
import { laneMaxHeld, type Lane, type Lanes, type LaneShards } from './lanes.js';
import type { LoopHealth } from './loop-health.js';
import { dispatcherMetrics } from './metrics.js';
import type { ParkFence, Parks } from './park.js';
import { randomBytes } from 'node:crypto';

/** Tasks of one shard held at once by its owner (rule 1): the bound on a replica's memory for tasks. */
export const shardMaxAckPending = 2_000;
const shardPullBatch = 256;
/** Sequences of tasks settled here recently, per shard (lanes.ts rule 2). */
const settledMemory = 4_096;
/** How long a released shard waits for the server to count the acks it sent (rule 3). */
const ackSettleMs = 2_000;
/**
 * An idle consumer's pull stays open this long and the server confirms it every idleHeartbeatMs (the
 * client's defaults). With a consumer per shard rather than per webhook, idleness costs next to nothing.
 */
const idlePullMs = 30_000;
const idleHeartbeatMs = 15_000;
/** How often each open shard consumer's progress is read (rule 6): 16 small requests per replica, 8 a second; a stall is found within 2 to 4 s. */
export const stallCheckMs = 2_000;
/** Looks without progress, while tasks wait, before a consumer counts as stalled (rule 6). */
const stalledLooks = 1;
/**
 * How long the shard consumers' and parks' JetStream API requests wait for an answer. An open of a shard
 * makes several; while NATS elects a leader they go unanswered, and each restart of the open waited the
 * client's 5 s default before it could try again (restarts at 5, 10, 15 s after a server was lost in
 * the cluster suite). Answers take milliseconds otherwise.
 */
export const shardRequestTimeoutMs = 2_000;
/** Consumer creations and deletions in flight at once, so a replica taking many shards does not flood JetStream's API. */
const maxConsumerOperations = 16;

interface Loop {
  done: Promise<void>;
  stop(): void;
  stopped: boolean;
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
  /** Whether the shard's recent successes were recalled since this replica took it (rule 2). */
  recalled: boolean;
  /** Counts the opens: an open overtaken by a later one (a resume during a restart's backoff) gives way. */
  generation: number;
  /** A restart waiting out its backoff (rule 4). */
  restartTimer?: NodeJS.Timeout;
  /** Tasks the loop received once the shard was being released: never acked here (rule 3). */
  ignored: number;
  /** The stall watch's last look: the consumer's delivered stream sequence, and how many looks saw no progress (rule 6). */
  watched?: { consumer: number; delivered: number; stuck: number };
  /** The highest consumer delivery sequence the loop received: deliveries beyond it never reached this replica (rule 3). */
  lastDelivery: number;
  /** This hold of the shard (rule 7). */
  readonly tenure: string;
  /** The stream's last sequence when the tenure's first open began (rule 7). */
  barrier?: number;
}

export class ShardConsumers implements LaneShards {
  private readonly shards = new Map<number, Shard>();
  private readonly consumerOperation = limiter(maxConsumerOperations);
  private closed = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly topology: Topology,
    private readonly ackWaitMs: number,
    private readonly lanes: () => Lanes,
    private readonly parks: () => Parks,
    private readonly fence: () => ShardFence,
    private readonly health: LoopHealth,
    /** Recalls a shard's successes stored since a server time (dispatch.ts); returns how many. */
    private readonly recall: (shard: number, sinceMs: number) => Promise<number>,
    private readonly logger: Logger,
    private readonly stallCheckIntervalMs = stallCheckMs,
  ) {}

  /**
   * The sequences settled here, per shard, kept when a shard is released: a shard that comes back to this
   * replica (a lease that lapsed during an election and was taken again) still knows what it settled, so
   * a task the server hands out again after a lost ack is acked, not sent again (lanes.ts rule 2).
   * Eviction: at most settledMemory sequences per shard, the oldest first; 16 shards.
   */
  private readonly settledMemories = new Map<number, RecentSet>();

  private settledMemoryOf(shard: number): RecentSet {
    let memory = this.settledMemories.get(shard);
    if (!memory) {
      memory = new RecentSet(settledMemory);
      this.settledMemories.set(shard, memory);
    }
    return memory;
  }

  private watchTimer: NodeJS.Timeout | undefined;
  private watching = false;

  /** Rule 6: looks at every open shard consumer's progress; runs while shards are consumed here. */
  private watch(): void {
    if (this.watchTimer || this.closed) return;
    this.watchTimer = setInterval(() => {
      if (this.watching) return;
      this.watching = true;
      void this.lookForStalls().finally(() => (this.watching = false));
    }, this.stallCheckIntervalMs);
    this.watchTimer.unref();
  }

  private async lookForStalls(): Promise<void> {
    for (const [shard, state] of this.shards) {
      if (!state.loop || state.loop.stopped) {
        state.watched = undefined;
        continue;
      }
      const generation = state.generation;
      const info = await this.jsm.consumers.info(this.stream(shard), this.topology.consumers.shard(shard)).catch(() => undefined);
      if (!info || this.shards.get(shard) !== state || state.generation !== generation) continue;
      const waiting = info.num_pending > 0 && info.num_ack_pending < shardMaxAckPending;
      const progressed = state.watched?.consumer !== generation || info.delivered.stream_seq !== state.watched.delivered;
      const stuck = waiting && !progressed ? (state.watched?.stuck ?? 0) + 1 : 0;
      state.watched = { consumer: generation, delivered: info.delivered.stream_seq, stuck };
      if (stuck < stalledLooks) continue;
      state.watched = undefined;
      this.logger.warn({ shard, pending: info.num_pending, ackPending: info.num_ack_pending, delivered: info.delivered.stream_seq }, 'shard consumer stalled: tasks wait but none was handed out; recreating it');
      dispatcherMetrics.deliveryLoopRestarts.add(1);
      void this.open(shard);
    }
  }

  consuming(shard: number): boolean {
    return !this.closed && this.shards.has(shard);
  }

  settled(shard: number): RecentSet | undefined {
    return this.shards.get(shard)?.settled;
  }

  /** The shard's tenure and barrier (rule 7), once its first open has read the barrier. */
  parkFence(shard: number): ParkFence | undefined {
    const state = this.shards.get(shard);
    return state?.barrier === undefined ? undefined : { tenure: state.tenure, barrier: state.barrier };
  }

  /**
   * Whether the lane blocks others (lanes.ts rule 3): the shard's consumer has (nearly) no room left to
   * hand out tasks, more of its tasks wait than the busy lanes of the shard have still to come (so tasks
   * of a webhook without a busy lane wait behind them), and this lane is the busiest (so of several busy
   * lanes sharing a shard only one is parked at a time, and two busy webhooks that share the room fairly
   * are left to drain). Two requests: the consumer's state, and the shard's per-webhook counts.
   */
  async blockedBehind(lane: Lane): Promise<boolean> {
    const stream = this.stream(lane.shard);
    const busy = this.lanes().ofShard(lane.shard).filter((other) => !other.parked && other.held.length > laneMaxHeld);
    if (busy.some((other) => other.held.length > lane.held.length)) return false;
    // The counts first, then the consumer: tasks handed out in between lower its pending count, so the
    // two answers, a few milliseconds apart, can hide a waiting task but never make one up.
    const { state } = await this.jsm.streams.info(stream, { subjects_filter: this.topology.subjects.deliverShard(lane.shard) });
    const stillToCome = busy.reduce((sum, other) => sum + Math.max(0, (state.subjects?.[this.topology.subjects.deliver(other.workspaceId, other.webhookId)] ?? 0) - other.held.length), 0);
    const info = await this.jsm.consumers.info(stream, this.topology.consumers.shard(lane.shard));
    if (info.num_ack_pending < shardMaxAckPending * 0.9) return false;
    return info.num_pending > stillToCome;
  }

  maybeAttempted(shard: number, seq: number): boolean {
    return seq <= (this.shards.get(shard)?.handedOutUpTo ?? 0);
  }

  get size(): number {
    return this.shards.size;
  }

  /** Starts consuming newly owned shards (rule 2). */
  async acquire(shards: readonly number[]): Promise<void> {
    await Promise.all(
      shards.map((shard) => {
        if (this.closed || this.shards.has(shard)) return;
        this.shards.set(shard, { settled: this.settledMemoryOf(shard), failures: 0, handedOutUpTo: 0, recalled: false, generation: 0, ignored: 0, lastDelivery: 0, tenure: randomBytes(6).toString('hex') });
        this.watch();
        return this.open(shard);
      }),
    );
  }

  /** Stops consuming these shards; resolves once none of their attempts runs here (rule 3). */
  async release(shards: readonly number[]): Promise<void> {
    await Promise.all(shards.map((shard) => this.close(shard)));
  }

  /** After the NATS connection came back: every loop starts again (rule 4). */
  resume(): void {
    if (this.closed) return;
    for (const shard of this.shards.keys()) void this.open(shard);
  }

  /** Stops every shard and takes no new one. */
  async stop(): Promise<void> {
    this.closed = true;
    clearInterval(this.watchTimer);
    await Promise.all([...this.shards.keys()].map((shard) => this.close(shard)));
  }

  private stream(shard: number): string {
    return this.topology.streams.deliverShards[shard]!;
  }

  private async close(shard: number): Promise<void> {
    const state = this.shards.get(shard);
    if (!state) return;
    this.shards.delete(shard);
    clearTimeout(state.restartTimer);
    this.health.markUp(`shard:${shard}`);
    if (state.loop) {
      state.loop.stopped = true;
      state.loop.stop();
    }
    const lanes = this.lanes().ofShard(shard);
    // Lanes stop before their next task; what they still hold stays unacked for the next owner (rule 3).
    await Promise.all(lanes.map(async (lane) => {
      await lane.steps;
      while (lane.running) await sleep(10);
      await this.parks().stop(lane);
      this.health.markUp(`lane:${lane.webhookId}`);
      this.health.markUp(`park:${lane.webhookId}`);
      this.lanes().remove(lane);
    }));
    await state.loop?.done;
    // The acks sent are counted by the server before the lease goes: the next owner purges up to the ack
    // floor it reads and recreates the consumer, so an ack still on its way would mean a repeat, sent
    // after later tasks. Pending without an ack from here, and so not waited for: what the lanes still
    // hold, what the loop received after the stop, and what the server handed out that never reached
    // this replica (a pull answered while it stopped).
    const held = lanes.reduce((count, lane) => count + lane.held.length, 0) + state.ignored;
    const deadline = Date.now() + ackSettleMs;
    let counted = false;
    while (Date.now() < deadline) {
      const info = await this.jsm.consumers.info(this.stream(shard), this.topology.consumers.shard(shard)).catch(() => undefined);
      const unreceived = info ? Math.max(0, info.delivered.consumer_seq - state.lastDelivery) : 0;
      if (!info || info.num_ack_pending <= held + unreceived) {
        counted = true;
        break;
      }
      await sleep(ownershipPollMs / 2);
    }
    this.logger.debug({ shard, held, counted }, counted ? 'shard released: the server counted every ack sent' : 'shard released: acks still uncounted after the wait');
  }

  /** Opens (or reopens, recreating its consumer) one shard's consumer, after finding its parks (rule 2). */
  private async open(shard: number): Promise<void> {
    const state = this.shards.get(shard);
    if (!state) return;
    // One open at a time per shard: this one replaces a pending restart and any loop still running.
    const generation = ++state.generation;
    clearTimeout(state.restartTimer);
    state.restartTimer = undefined;
    if (state.loop && !state.loop.stopped) {
      state.loop.stopped = true;
      state.loop.stop();
    }
    const current = () => this.shards.get(shard) === state && state.generation === generation && this.consuming(shard);
    // Only while the lease holds: a replica whose renewal runs late must not recreate its successor's consumer.
    if (!(await this.fence().mayAct(shard)) || !current()) return;
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
      // Rule 7: answered by the stream's leader, before this tenure writes anything.
      state.barrier ??= streamState.last_seq;
      for (const subject of Object.keys(streamState.subjects ?? {})) {
        const [, , , workspaceId, webhookId] = subject.split('.');
        if (workspaceId && webhookId) parked.set(webhookId, workspaceId);
      }
      if (!state.recalled) {
        const since = await this.oldestMaybeOut(shard, existing);
        if (since !== undefined) {
          const started = Date.now();
          const recalled = await this.recall(shard, since);
          this.logger.info({ shard, recalled, since: new Date(since).toISOString(), durationMs: Date.now() - started }, 'recalled the successes stored in the shard since its oldest task a predecessor may have had out');
        }
        state.recalled = true;
      }
      for (const [webhookId, workspaceId] of parked) this.parks().resume(this.lanes().laneOf(shard, workspaceId, webhookId));
      if (!this.fence().holds(shard)) throw new Error(`the lease of shard ${shard} is not confirmed; opening it later`);
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
      if (!current()) return;
      const info = await this.consumerOperation(() => ensureConsumer(this.jsm, stream, shardConsumerConfig(this.topology, shard, this.ackWaitMs, shardMaxAckPending)));
      if (!current()) return;
      const messages = await this.js.consumers.getConsumerFromInfo(info).consume({ max_messages: shardPullBatch, expires: idlePullMs, idle_heartbeat: idleHeartbeatMs, abort_on_missing_resource: true });
      if (!current()) {
        messages.stop();
        return;
      }
      const loop: Loop = { stopped: false, done: Promise.resolve(), stop: () => messages.stop() };
      state.loop = loop;
      // A new consumer counts its deliveries from 1.
      state.lastDelivery = 0;
      state.ignored = 0;
      loop.done = (async () => {
        for await (const message of messages) {
          state.lastDelivery = Math.max(state.lastDelivery, message.info.deliverySequence);
          // Shard tasks are never nak'ed (rule 1): one not taken stays with the consumer for the next loop or
          // owner. While a lease renewal runs late, tasks are still taken; lanes wait before acting (fence.ts).
          if (loop.stopped || !this.consuming(shard)) {
            state.ignored++;
            continue;
          }
          this.lanes().take(shard, message);
        }
      })().then(
        () => (loop.stopped ? undefined : this.restart(shard, state, new Error('the consume iterator ended'))),
        (error: unknown) => (loop.stopped ? undefined : this.restart(shard, state, error)),
      );
      state.failures = 0;
      this.health.markUp(`shard:${shard}`);
    } catch (error) {
      if (current()) this.restart(shard, state, error);
    }
  }

  /**
   * The server's store time of the oldest task of the shard a predecessor may have had out (rule 2): the
   * first stored after the old consumer's ack floor when it has tasks out, the oldest stored when there is
   * no old consumer; undefined when there is none.
   */
  private async oldestMaybeOut(shard: number, existing: ConsumerInfo | undefined): Promise<number | undefined> {
    if (existing && existing.num_ack_pending === 0) return undefined;
    const from = existing ? existing.ack_floor.stream_seq + 1 : 0;
    // NATS 2.9 answers "next by subject" (a wildcard too) from the stream's API, as park.ts reads parks.
    const oldest = await this.jsm.streams
      .getMessage(this.stream(shard), { next_by_subj: this.topology.subjects.deliverShard(shard), seq: from } as unknown as { seq: number })
      .catch((error: unknown) => {
        if (error instanceof JetStreamApiError && error.status === 404) return null;
        throw error;
      });
    return oldest ? oldest.time.getTime() : undefined;
  }

  private restart(shard: number, state: Shard, error: unknown): void {
    if (this.shards.get(shard) !== state || this.closed) return;
    clearTimeout(state.restartTimer);
    if (state.loop) {
      state.loop.stopped = true;
      state.loop.stop();
    }
    state.failures++;
    const delayMs = this.health.failed(`shard:${shard}`, state.failures);
    this.logger.error({ err: error, shard, restartInMs: delayMs }, 'delivery shard loop ended with an error; restarting it');
    state.restartTimer = setTimeout(() => void this.open(shard), delayMs);
    state.restartTimer.unref();
  }

  private async deleteConsumer(shard: number, name: string): Promise<void> {
    await this.jsm.consumers.delete(this.stream(shard), name).catch((error: unknown) => {
      if (!(error instanceof JetStreamApiError && error.status === 404)) throw error;
    });
  }
}

// The lane of each webhook: its tasks from the shard consumer, in order, attempted one at a time. The
// rules:
// 1. Tasks are queued per webhook in the order the shard consumer handed them out; a lane attempts one
//    task at a time, so there is one event in flight per webhook.
// 2. A task handed out again while its lane still holds it (ack_wait passed) is the same task: the lane
//    keeps one copy, acking through the newest delivery. A task settled here recently (its sequence is in
//    the shard's settled memory) is acked again instead of attempted twice.
// 3. A lane never naks. A task that must wait (a retry's delay, an unreadable record) parks the lane, and
//    so does a lane whose oldest waiting task has waited half of ack_wait (an endpoint slower than its
//    share): its tasks then go to the park (park.ts), and so does every later task of that webhook while
//    it stays parked. A busy lane (more than laneMaxHeld tasks) of a healthy endpoint is not parked for
//    being busy: it drains at the endpoint's speed, with no copies. It is parked only when it blocks
//    others: its shard's consumer has no room left to hand out tasks, tasks of webhooks without a busy
//    lane wait behind it, and it is the busiest lane of its shard (shard-consumer.ts blockedBehind).
//    That is asked at most once per blockCheckMs per lane.
// 4. A handler that throws keeps its task first; the lane tries it again after the backoff
//    (loop-health.ts) and is reported down meanwhile.
// 5. Every start of a task asks the fence (fence.ts); a lane stops at once when its shard is released.
// Eviction: a lane is removed once it is empty, not running and not parked; a shard's lanes go with the
// shard (shard-consumer.ts).
import type { JsMsg } from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import type { RecentSet } from './concurrency.js';
import type { Handled, TaskMessage, TaskPath } from './dispatch.js';
import type { ShardFence } from './fence.js';
import type { LoopHealth } from './loop-health.js';
import type { ParkReader } from './park.js';
import { sleep } from './concurrency.js';

/** Handles one task (dispatch.ts). */
export type DeliveryHandler = (message: TaskMessage, path: TaskPath, maybeAttempted?: boolean, takenAt?: number) => Promise<Handled>;

/** Tasks one lane may hold before it asks whether it blocks other webhooks of its shard (rule 3). */
export const laneMaxHeld = 200;
/** How often a busy lane asks whether it blocks others (rule 3): two small JetStream requests each time. */
export const blockCheckMs = 500;

export interface HeldTask {
  readonly seq: number;
  /** The newest delivery of this task: acks go through it (rule 2). */
  message: JsMsg;
  readonly takenAt: number;
}

export interface Lane {
  readonly shard: number;
  readonly workspaceId: string;
  readonly webhookId: string;
  readonly held: HeldTask[];
  readonly bySeq: Map<number, HeldTask>;
  running: boolean;
  parked: boolean;
  /** Moves to the park and unparking, one after another (park.ts rule 3). */
  steps: Promise<void>;
  park?: ParkReader;
  failures: number;
  /** When this lane last asked whether it blocks others (rule 3). */
  blockCheckedAt: number;
}

/** What a lane needs of the shard it belongs to (shard-consumer.ts). */
export interface LaneShards {
  /** Whether the shard is consumed here. */
  consuming(shard: number): boolean;
  /** Sequences of the shard's tasks settled here recently; undefined once the shard is released. */
  settled(shard: number): RecentSet | undefined;
  /** Whether a task of the shard may have been attempted before although handed out for the first time. */
  maybeAttempted(shard: number, seq: number): boolean;
  /** Whether the lane blocks tasks of other webhooks, its shard's consumer having no room left (rule 3). */
  blockedBehind(lane: Lane): Promise<boolean>;
}

/** What a lane needs of parking (park.ts). */
export interface LaneParking {
  /** Parks the lane: moves what it holds to the park and starts reading it. */
  park(lane: Lane): Promise<void>;
  /** Moves a task taken while the lane is parked to the park, after the moves before it. */
  follow(lane: Lane): void;
}

export class Lanes {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    private readonly handle: DeliveryHandler,
    private readonly shards: LaneShards,
    private readonly parking: LaneParking,
    private readonly fence: ShardFence,
    private readonly health: LoopHealth,
    private readonly ackWaitMs: number,
    private readonly logger: Logger,
  ) {}

  get(webhookId: string): Lane | undefined {
    return this.lanes.get(webhookId);
  }

  ofShard(shard: number): Lane[] {
    return [...this.lanes.values()].filter((lane) => lane.shard === shard);
  }

  /** Lanes in memory, and of those the parked ones. */
  counts(): { lanes: number; parked: number } {
    let parked = 0;
    for (const lane of this.lanes.values()) if (lane.parked) parked++;
    return { lanes: this.lanes.size, parked };
  }

  laneOf(shard: number, workspaceId: string, webhookId: string): Lane {
    let lane = this.lanes.get(webhookId);
    if (!lane) {
      lane = { shard, workspaceId, webhookId, held: [], bySeq: new Map(), running: false, parked: false, steps: Promise.resolve(), failures: 0, blockCheckedAt: 0 };
      this.lanes.set(webhookId, lane);
    }
    return lane;
  }

  /** Removes a released shard's lane, unless a newer one took its place. */
  remove(lane: Lane): void {
    if (this.lanes.get(lane.webhookId) === lane) this.lanes.delete(lane.webhookId);
  }

  /** A task from the shard consumer (rules 1-3). */
  take(shard: number, message: JsMsg): void {
    const [, , , workspaceId, webhookId] = message.subject.split('.');
    if (!workspaceId || !webhookId) {
      this.logger.error({ subject: message.subject, seq: message.seq }, 'delivery task on an unexpected subject terminated');
      message.term();
      return;
    }
    if (this.shards.settled(shard)?.has(message.seq)) {
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
    if (lane.parked) this.parking.follow(lane);
    else if (!lane.running) void this.run(lane);
  }

  /** Attempts the lane's tasks one at a time, until it is empty, parked, or the shard is no longer consumed here. */
  async run(lane: Lane): Promise<void> {
    lane.running = true;
    let abandoned = false;
    try {
      while (lane.held.length > 0 && !lane.parked && this.shards.consuming(lane.shard)) {
        if (!(await this.fence.mayAct(lane.shard))) break;
        const head = lane.held[0]!;
        const message = head.message;
        let handled: Handled;
        try {
          handled = await this.handle(message, 'lane', this.shards.maybeAttempted(lane.shard, head.seq), head.takenAt);
        } catch (error) {
          lane.failures++;
          const delayMs = this.health.failed(`lane:${lane.webhookId}`, lane.failures);
          this.logger.error({ err: error, webhookId: lane.webhookId, workspaceId: lane.workspaceId, retryInMs: delayMs }, 'delivery failed with an error; trying the task again');
          head.message.working();
          await sleep(delayMs);
          head.message.working();
          continue;
        }
        if (lane.failures > 0) {
          lane.failures = 0;
          this.health.markUp(`lane:${lane.webhookId}`);
        }
        if (handled === 'abandoned') {
          abandoned = true;
          return;
        }
        if (handled === 'park') {
          await this.parking.park(lane);
          return;
        }
        // Settled through a delivery the shard consumer has since replaced: settle the newest one too.
        if (head.message !== message) head.message.ack();
        this.forget(lane, head);
        const next = lane.held[0];
        if (next && Date.now() - next.takenAt > this.ackWaitMs / 2) {
          this.logger.info({ webhookId: lane.webhookId, held: lane.held.length, waitedMs: Date.now() - next.takenAt }, 'webhook falling behind; its tasks are parked');
          await this.parking.park(lane);
          return;
        }
        if (next && lane.held.length > laneMaxHeld && Date.now() - lane.blockCheckedAt >= blockCheckMs) {
          lane.blockCheckedAt = Date.now();
          if (await this.shards.blockedBehind(lane).catch(() => false)) {
            this.logger.info({ webhookId: lane.webhookId, held: lane.held.length }, 'busy webhook holds its shard\'s room while other webhooks wait; its tasks are parked');
            await this.parking.park(lane);
            return;
          }
        }
      }
    } finally {
      lane.running = false;
      // A task taken while this run was finishing (e.g. just after an unpark) starts a new run.
      if (!abandoned && lane.held.length > 0 && !lane.parked && this.shards.consuming(lane.shard) && this.lanes.get(lane.webhookId) === lane) queueMicrotask(() => void this.runIfIdle(lane));
      else this.dropIfIdle(lane);
    }
  }

  /** Starts a run unless one is going or the lane is parked or empty. */
  runIfIdle(lane: Lane): void {
    if (!lane.running && !lane.parked && lane.held.length > 0) void this.run(lane);
  }

  /** The lane's first task is settled (or stored in the park): it leaves the lane. */
  forget(lane: Lane, task: HeldTask): void {
    lane.held.shift();
    lane.bySeq.delete(task.seq);
    this.shards.settled(lane.shard)?.add(task.seq);
  }

  dropIfIdle(lane: Lane): void {
    if (!lane.running && !lane.parked && lane.held.length === 0 && this.lanes.get(lane.webhookId) === lane) this.lanes.delete(lane.webhookId);
  }
}

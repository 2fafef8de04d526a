// The park of each webhook that must wait: its tasks stored in order on the webhook's park subject of
// its shard's stream, read back one at a time. The rules:
// 1. Moving. A parked lane's tasks move, in order, to the webhook's park subject in the same stream, each
//    stored there before it is acked in the shard consumer (the copy's id is its shard sequence, so a
//    move repeated after a crash is stored once); so does every later task of that webhook while it stays
//    parked. A hanging endpoint thus holds only its own tasks, never the shard's limit. An ack is sent
//    only while the fence says the lease holds; otherwise the next owner finds the task and its stored
//    copy once.
// 2. Reading. The park has no consumer: the owner reads the webhook's oldest parked task from the stream
//    (a get by subject), attempts it, and deletes it once settled; a retry's delay is a timer in memory.
//    A parked webhook costs the servers nothing while it waits, however many there are.
// 3. Unparking. When no parked task is left, the webhook is unparked and its new tasks go through its
//    lane again. Moves to the park and the unparking run one after another per webhook (the lane's steps),
//    so no task can slip between them.
// 4. Failures. A park read or a parked delivery that fails keeps its task first and tries again after the
//    backoff (loop-health.ts), reported down meanwhile. A delete of a settled parked task is retried in
//    place: read again, a delivered task would be sent again. A repeated delete that finds the task gone
//    is done (its first answer was lost after the server deleted it).
// 5. A parked webhook that becomes undeliverable (disabled, suspended) has its reader woken, so a task
//    waiting for its retry delay is dropped without waiting.
// 6. Fencing by the server's order. Each owner's hold of a shard is a tenure with its own id, and its
//    park copies carry it. When a tenure begins, the shard stream's last sequence is its barrier (read
//    from the stream's leader before anything of the tenure is written). A copy stored after the barrier
//    by another tenure was written under a lease that had lapsed: a replica cut off from NATS whose
//    publish was buffered by the client (nats.js cannot be told not to buffer) and sent once it
//    reconnected. Its task was never acked (acks wait for the copy's answer and then for the fence), so
//    the new owner delivers it from the shard consumer in order; the late copy is removed unread and
//    logged. Without the barrier it would be delivered again whenever the webhook next parks, ahead of
//    newer tasks.
// Eviction: a reader ends when its lane unparks or its shard is released (stop()).
import { deleteStoredMessage, natsHeaders, parkedFromHeader, parkedTenureHeader, type JetStreamManager, type JetStreamPublisher, type MsgHdrs, type StoredMsg, type Topology } from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import type { Handled, TaskMessage } from './dispatch.js';
import type { ShardFence } from './fence.js';
import type { DeliveryHandler, Lane, Lanes } from './lanes.js';
import type { LoopHealth } from './loop-health.js';
import { retryInPlace } from './retry-in-place.js';

const moveRetryInitialMs = 100;
const moveRetryMaxMs = 2_000;

/** A shard's current tenure and its barrier (rule 6). */
export interface ParkFence {
  readonly tenure: string;
  /** The shard stream's last sequence when the tenure began. */
  readonly barrier: number;
}

/** The reader of one webhook's park (rule 2). */
export interface ParkReader {
  stopped: boolean;
  /** Ends the pause before the next read (a retry's delay, a backoff) at once. */
  wake(): void;
  done: Promise<void>;
}

export class Parks {
  constructor(
    private readonly jsm: JetStreamManager,
    private readonly publisher: JetStreamPublisher,
    private readonly topology: Topology,
    private readonly handle: DeliveryHandler,
    private readonly lanes: () => Lanes,
    private readonly fence: ShardFence,
    private readonly health: LoopHealth,
    /** Whether the shard is consumed here. */
    private readonly consuming: (shard: number) => boolean,
    private readonly logger: Logger,
    /** The shard's tenure here and its barrier (rule 6); undefined before its first open. */
    private readonly tenure: (shard: number) => ParkFence | undefined = () => undefined,
  ) {}

  /** Runs one parking step of a lane after the ones before it (rule 3). */
  step(lane: Lane, work: () => Promise<void>): Promise<void> {
    const next = lane.steps.then(work).catch((error: unknown) => {
      this.logger.error({ err: error, webhookId: lane.webhookId }, 'parking step failed');
    });
    lane.steps = next;
    return next;
  }

  /** Parks the lane: moves what it holds to the park, then starts reading the park. */
  park(lane: Lane): Promise<void> {
    lane.parked = true;
    this.logger.debug({ webhookId: lane.webhookId, held: lane.held.length }, 'webhook parked');
    return this.step(lane, async () => {
      await this.moveToPark(lane);
      this.startReader(lane);
    });
  }

  /** A task taken while the lane is parked follows the others to the park (rule 1). */
  follow(lane: Lane): void {
    void this.step(lane, () => this.moveToPark(lane));
  }

  /** Marks a webhook found parked at takeover, and starts reading its park. */
  resume(lane: Lane): void {
    if (lane.parked) return;
    lane.parked = true;
    this.startReader(lane);
  }

  /** Wakes a parked webhook's reader (rule 5). */
  wake(lane: Lane): void {
    lane.park?.wake();
  }

  /** Stops the lane's reader and waits for it. */
  async stop(lane: Lane): Promise<void> {
    const reader = lane.park;
    if (!reader) return;
    lane.park = undefined;
    reader.stopped = true;
    reader.wake();
    await reader.done;
  }

  /** Moves every task the lane holds to its park, in order: each stored there before it is acked here. */
  private async moveToPark(lane: Lane): Promise<void> {
    if (!lane.parked) {
      // Unparked in the meantime: what was taken since goes through the lane.
      if (!lane.running) void this.lanes().run(lane);
      return;
    }
    const subject = this.topology.subjects.park(lane.workspaceId, lane.webhookId);
    const tenure = this.tenure(lane.shard)?.tenure;
    if (!tenure) throw new Error(`shard ${lane.shard} has no tenure here; its tasks stay in the lane`);
    while (lane.held.length > 0 && (await this.fence.mayAct(lane.shard))) {
      const task = lane.held[0]!;
      await retryInPlace(() => this.publisher.publish(subject, task.message.data, { msgID: `parked.${task.seq}`, headers: parkedHeaders(task.message.headers, task.seq, tenure) }), {
        keepAlive: () => task.message.working(),
        initialDelayMs: moveRetryInitialMs,
        maxDelayMs: moveRetryMaxMs,
        givenUp: () => !this.consuming(lane.shard),
        onFirstFailure: (error) => this.logger.warn({ err: error, webhookId: lane.webhookId, seq: task.seq }, 'parking a task failed; retrying'),
      });
      // Acked only while the lease holds; otherwise the next owner finds the task and its stored copy once.
      if (!(await this.fence.mayAct(lane.shard))) return;
      task.message.ack();
      this.lanes().forget(lane, task);
    }
  }

  /** Starts reading a parked lane's park, unless a reader runs (rule 2). */
  private startReader(lane: Lane): void {
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
    reader.done = this.read(lane, reader, pause).finally(() => {
      this.logger.debug({ webhookId: lane.webhookId, parked: lane.parked, stopped: reader.stopped }, 'park reader ended');
      if (lane.park === reader) lane.park = undefined;
    });
  }

  private async read(lane: Lane, reader: ParkReader, pause: (ms: number) => Promise<void>): Promise<void> {
    const stream = this.topology.streams.deliverShards[lane.shard]!;
    const subject = this.topology.subjects.park(lane.workspaceId, lane.webhookId);
    const reads = new Map<number, number>();
    const failed = async (error: unknown, what: string) => {
      lane.failures++;
      const delayMs = this.health.failed(`park:${lane.webhookId}`, lane.failures);
      this.logger.error({ err: error, webhookId: lane.webhookId, workspaceId: lane.workspaceId, retryInMs: delayMs }, `${what}; trying again`);
      await pause(delayMs);
    };
    while (!reader.stopped && lane.parked && (await this.fence.mayAct(lane.shard))) {
      let stored: StoredMsg | null;
      try {
        stored = await this.oldest(stream, subject);
      } catch (error) {
        await failed(error, 'reading a parked task failed');
        continue;
      }
      if (!stored) {
        // Nothing parked: unpark, as a step, so no move runs in between (rule 3).
        await this.step(lane, async () => {
          if (!lane.parked || (await this.oldest(stream, subject))) return;
          lane.parked = false;
          if (lane.park === reader) lane.park = undefined;
          this.logger.debug({ webhookId: lane.webhookId, held: lane.held.length, running: lane.running }, 'webhook unparked');
          this.health.markUp(`park:${lane.webhookId}`);
          if (lane.held.length > 0 && !lane.running) void this.lanes().run(lane);
          else this.lanes().dropIfIdle(lane);
        });
        continue;
      }
      if (this.writtenAfterLapse(lane.shard, stored)) {
        this.logger.warn(
          { webhookId: lane.webhookId, workspaceId: lane.workspaceId, seq: stored.seq, parkedFrom: stored.header?.get(parkedFromHeader), tenure: stored.header?.get(parkedTenureHeader) ?? '' },
          'a park copy stored after the shard changed hands (written under a lapsed lease) removed unread; its task is delivered from the shard in order',
        );
        if (!(await this.remove(lane, reader, stream, stored.seq))) return;
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
      if (task.removed && !(await this.remove(lane, reader, stream, stored.seq))) return;
      if (lane.failures > 0) {
        lane.failures = 0;
        this.health.markUp(`park:${lane.webhookId}`);
      }
      if (handled === 'handed-back') await pause(task.pauseMs);
    }
  }

  /**
   * Removes a parked task, retried in place: read again, a delivered task would be sent again (rule 4). A
   * repeat that finds it gone is done: the delete went through and only its answer was lost. False when
   * the reader was stopped first.
   */
  private async remove(lane: Lane, reader: ParkReader, stream: string, seq: number): Promise<boolean> {
    try {
      await retryInPlace(() => deleteStoredMessage(this.jsm, stream, seq), {
        keepAlive: () => {},
        initialDelayMs: moveRetryInitialMs,
        maxDelayMs: moveRetryMaxMs,
        givenUp: () => reader.stopped || !this.consuming(lane.shard),
        onFirstFailure: (error) => this.logger.warn({ err: error, webhookId: lane.webhookId, seq }, 'removing a parked task failed; retrying'),
      });
      return true;
    } catch {
      return false;
    }
  }

  /** Whether a park copy was stored after this tenure's barrier by another tenure (rule 6). */
  private writtenAfterLapse(shard: number, stored: StoredMsg): boolean {
    const fence = this.tenure(shard);
    if (!fence || stored.seq <= fence.barrier) return false;
    return stored.header?.get(parkedTenureHeader) !== fence.tenure;
  }

  /** The webhook's oldest parked task, or null. */
  private async oldest(stream: string, subject: string): Promise<StoredMsg | null> {
    // NATS 2.9 answers "next by subject" from the stream's API; the client's types know it only for direct gets.
    return this.jsm.streams.getMessage(stream, { next_by_subj: subject, seq: 0 } as unknown as { seq: number });
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
function parkedHeaders(original: MsgHdrs | undefined, seq: number, tenure: string): MsgHdrs {
  const h = natsHeaders();
  if (original) {
    for (const key of original.keys()) {
      if (key.toLowerCase().startsWith('nats-')) continue;
      for (const value of original.values(key)) h.append(key, value);
    }
  }
  h.set(parkedFromHeader, String(seq));
  h.set(parkedTenureHeader, tenure);
  return h;
}

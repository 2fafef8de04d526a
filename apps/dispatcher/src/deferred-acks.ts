// The acks of tasks a lane delivered, sent together with this replica's next record batch instead of
// each on its own. A busy webhook's lane used to cost two socket writes to NATS per delivery (its record
// batch, then its ack, a turn of the event loop apart); on these machines a write is a system call of
// tens of microseconds, and the NATS server reads one more frame for each. The rules:
// 1. What is deferred: the ack of a lane task whose success was stored (dispatch.ts). Drops, retries and
//    parked tasks are settled at once: their settling is not a plain ack (term, nak, a park's delete).
// 2. When it goes: right before the next record batch is published (record-batches.ts), in the same
//    synchronous turn, so the client writes the acks and the batch to the socket at once; at the latest
//    flushAfterMs after the oldest ack waiting was added, not sooner (a batch every few milliseconds
//    takes them all along; a shard's handover, which waits for the server to count the acks sent,
//    shard-consumer.ts rule 3, sees them then); and when the dispatcher shuts down.
// 3. Why a deferred ack repeats nothing: the task is settled here already (the lane forgot it, and its
//    sequence is in the shard's settled memory, so a redelivery is acked, not attempted). If this replica
//    dies before the ack is sent, the task's success is stored in a record batch, and the next owner
//    recalls it and acks the task without sending it again (record-batches.ts rule 4). What a crash
//    repeats is unchanged: at most the attempt in flight.
// 4. Memory: one reference per task delivered in the last flushAfterMs.

/** Anything that can be acked: a JetStream message. */
export interface Ackable {
  ack(): void;
}

/** The longest an ack waits for a record batch to travel with (rule 2). */
export const flushAfterMs = 5;

export class DeferredAcks {
  private pending: Ackable[] = [];
  /** When the oldest waiting ack was added. */
  private oldestAt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly afterMs = flushAfterMs) {}

  /** Sends the ack with the next record batch, or within afterMs (rule 2). */
  add(message: Ackable): void {
    if (this.pending.length === 0) this.oldestAt = Date.now();
    this.pending.push(message);
    // One timer at a time; a flush by a batch leaves it running, and it waits again for what came since.
    this.timer ??= setTimeout(this.due, this.afterMs).unref();
  }

  private readonly due = (): void => {
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const waited = Date.now() - this.oldestAt;
    if (waited < this.afterMs) this.timer = setTimeout(this.due, this.afterMs - waited).unref();
    else this.flush();
  };

  /** Sends every ack waiting now. */
  flush(): void {
    if (this.pending.length === 0) return;
    const pending = this.pending;
    this.pending = [];
    for (const message of pending) message.ack();
  }

  /** Acks waiting now. */
  get size(): number {
    return this.pending.length;
  }
}

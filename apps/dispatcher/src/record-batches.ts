// Attempt records of successful attempts, stored many to one JetStream message per delivery shard. The
// rules:
// 1. What is batched: the record of an attempt whose decision is "succeeded", nearly every record. No
//    later attempt reads such a record back, except a new owner of the shard (rule 4). Records of retries
//    and drops stay one per message on the webhook's subject, where the next attempt looks up its number
//    and a drain looks up how the delivery ended (dispatch.ts).
// 2. One batch per shard is being stored at a time. A record that comes while one is stored waits for
//    it and then goes with every record that came meanwhile: under load batches grow by themselves, and
//    a lone record is stored at once (no fixed wait). A batch holds at most maxRecords records and
//    maxBytes bytes; a bigger record goes alone. Batches of one shard are stored in the order their
//    records came.
// 3. A record's promise resolves once its batch is stored (its task is acked only then), and rejects if
//    the store failed; the dispatch then adds it again (retried in place, dispatch.ts). A store that
//    failed only on its way back leaves the record in the stream twice: the log writes each (delivery,
//    attempt) once. A record that waited longer than keepAliveAfterMs has its task kept alive
//    (working()) before its batch goes, so waiting behind a slow store does not eat the task's ack wait.
// 4. Recall. A replica remembers the deliveries it settled (dispatch.ts) for a while. A replica that takes
//    a shard over, when its predecessor may have had tasks out, reads the shard's batches stored since
//    the server's store time of the oldest such task (shard-consumer.ts rule 2), before it touches any of
//    them, and remembers the successes they hold apart from its own, so new deliveries cannot crowd them
//    out: a task whose success was stored but whose ack never reached the server is then acked, not sent
//    again, however long ago that was. Server time against server time: a success of a task was stored
//    after the task. Parked tasks' successes are not batched (dispatch.ts).
import { AttemptDecision, AttemptRecord, AttemptRecordBatch, encodeMessage } from '@webhooks/contracts';
import { eachStored, type JetStreamClient, type JetStreamPublisher, type Topology } from '@webhooks/messaging';
import { DeferredAcks } from './deferred-acks.js';
import { dispatcherMetrics } from './metrics.js';

export interface RecordBatchLimits {
  readonly maxRecords: number;
  readonly maxBytes: number;
}

/** Well under NATS's default 1 MB message limit; a record's body may take most of one. */
export const defaultRecordBatchLimits: RecordBatchLimits = { maxRecords: 500, maxBytes: 512 * 1024 };
export const keepAliveAfterMs = 500;

interface Waiting {
  readonly encoded: Uint8Array;
  readonly since: number;
  readonly keepAlive: () => void;
  resolve(): void;
  reject(error: unknown): void;
}

interface ShardQueue {
  waiting: Waiting[];
  storing: boolean;
}

export class RecordBatches {
  private readonly queues = new Map<number, ShardQueue>();

  constructor(
    private readonly publisher: JetStreamPublisher,
    private readonly topology: Topology,
    private readonly limits: RecordBatchLimits = defaultRecordBatchLimits,
    /** Acks of delivered lane tasks, written to the socket with the next batch (deferred-acks.ts). */
    readonly acks = new DeferredAcks(),
  ) {}

  /** Stores the record with others of the shard; resolves once stored (rule 3). */
  add(shard: number, record: AttemptRecord, keepAlive: () => void): Promise<void> {
    const encoded = encodeMessage(AttemptRecord, record);
    let queue = this.queues.get(shard);
    if (!queue) {
      queue = { waiting: [], storing: false };
      this.queues.set(shard, queue);
    }
    const promise = new Promise<void>((resolve, reject) => queue.waiting.push({ encoded, since: Date.now(), keepAlive, resolve, reject }));
    // Deferred to the end of this round of I/O, so the records of responses that arrived together go together.
    if (!queue.storing && queue.waiting.length === 1) setImmediate(() => this.store(shard, queue));
    return promise;
  }

  private store(shard: number, queue: ShardQueue): void {
    if (queue.storing || queue.waiting.length === 0) return;
    const batch = this.take(queue);
    queue.storing = true;
    const now = Date.now();
    for (const item of batch) if (now - item.since > keepAliveAfterMs) item.keepAlive();
    // In the same turn as the publish: the client writes the acks and the batch at once.
    this.acks.flush();
    this.publisher
      .publish(this.topology.subjects.attemptBatch(shard), frame(batch.map((item) => item.encoded)))
      .then(
        () => {
          dispatcherMetrics.recordBatchSize.record(batch.length);
          for (const item of batch) item.resolve();
        },
        (error: unknown) => {
          for (const item of batch) item.reject(error);
        },
      )
      .finally(() => {
        queue.storing = false;
        this.store(shard, queue);
      });
  }

  /** The longest run of waiting records, oldest first, within the limits (at least one). */
  private take(queue: ShardQueue): Waiting[] {
    let count = 0;
    let bytes = 0;
    for (const item of queue.waiting) {
      const size = item.encoded.length + 6;
      if (count > 0 && (count >= this.limits.maxRecords || bytes + size > this.limits.maxBytes)) break;
      count++;
      bytes += size;
    }
    return queue.waiting.splice(0, count);
  }
}

/**
 * An AttemptRecordBatch from records already encoded: each is field 1 (a length-delimited message), so
 * the batch is their concatenation, each behind its tag and length. Nothing is encoded twice.
 */
export function frame(records: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const record of records) size += 1 + varintLength(record.length) + record.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const record of records) {
    out[at++] = 0x0a;
    let length = record.length;
    while (length > 0x7f) {
      out[at++] = (length & 0x7f) | 0x80;
      length >>>= 7;
    }
    out[at++] = length;
    out.set(record, at);
    at += record.length;
  }
  return out;
}

function varintLength(value: number): number {
  let bytes = 1;
  while (value > 0x7f) {
    value >>>= 7;
    bytes++;
  }
  return bytes;
}

/** A success found in a record batch: all a new owner keeps of it. */
export interface RecalledSuccess {
  readonly deliveryId: string;
  readonly attempt: number;
}

/**
 * Hands each successful attempt in the shard's batches stored since `sinceMs` (rule 4) to `each`, in
 * stream order; returns how many. Only the delivery and attempt are kept, not the records' bodies.
 */
export async function recallSuccesses(js: JetStreamClient, topology: Topology, shard: number, sinceMs: number, each: (success: RecalledSuccess) => void): Promise<number> {
  let found = 0;
  await eachStored(js, topology.streams.attempts, topology.subjects.attemptBatch(shard), sinceMs, (message) => {
    for (const record of AttemptRecordBatch.decode(message.data).records) {
      if (record.decision !== AttemptDecision.ATTEMPT_DECISION_SUCCEEDED) continue;
      each({ deliveryId: record.deliveryId, attempt: record.attemptNumber });
      found++;
    }
  });
  return found;
}

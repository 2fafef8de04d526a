// Reads what a stream holds on one subject, from a start, without a durable consumer: an ordered
// consumer that is removed once read. For the occasional reader (a new shard owner recalling recent
// records, tests), not for a hot path.
import { DeliverPolicy, type JetStreamClient } from '@nats-io/jetstream';

export interface StoredMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
}

/**
 * Hands every message stored on `subject` (since `sinceMs`, when given) to `each`, in stream order, one
 * at a time: nothing is kept here, so a long read holds no more than one pull of messages.
 */
export async function eachStored(js: JetStreamClient, stream: string, subject: string, sinceMs: number | undefined, each: (message: StoredMessage) => void): Promise<number> {
  const consumer = await js.consumers.get(stream, {
    filter_subjects: subject,
    ...(sinceMs === undefined ? {} : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(sinceMs).toISOString() }),
  });
  let read = 0;
  try {
    // As many as the consumer says are stored from its start; each message says how many are left after it.
    let left = (await consumer.info()).num_pending;
    while (left > 0) {
      const messages = await consumer.fetch({ max_messages: Math.min(left, 1000), expires: 5_000 });
      let got = 0;
      for await (const message of messages) {
        each({ seq: message.seq, subject: message.subject, data: message.data });
        left = message.info.pending;
        got++;
        if (left === 0) break;
      }
      if (got === 0) throw new Error(`reading ${subject} from ${stream}: the server handed out nothing although ${left} message(s) are left`);
      read += got;
    }
    return read;
  } finally {
    await consumer.delete().catch(() => false);
  }
}

/** Every message stored on `subject` (since `sinceMs`, when given), in stream order. */
export async function readStored(js: JetStreamClient, stream: string, subject: string, sinceMs?: number): Promise<StoredMessage[]> {
  const found: StoredMessage[] = [];
  await eachStored(js, stream, subject, sinceMs, (message) => found.push(message));
  return found;
}

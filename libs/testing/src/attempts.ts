import { AttemptRecord, BreakerTripped } from '@webhooks/contracts';
import { connectNats, jetstream, topology } from '@webhooks/messaging';
import { testEnvironment } from './names.js';

/**
 * The messages of one subject of a stream, in order, decoded. Waits until there are at least `count`
 * (or `timeoutMs` passes, then rejects saying how many it found).
 */
export async function subjectMessages<T>(stream: string, subject: string, decode: (data: Uint8Array) => T, count: number, timeoutMs = 10_000, natsUrl = testEnvironment.natsUrl): Promise<T[]> {
  const nc = await connectNats(natsUrl, `reader-${stream}`);
  try {
    const js = jetstream(nc);
    const deadline = Date.now() + timeoutMs;
    let found: T[] = [];
    while (Date.now() < deadline) {
      const consumer = await js.consumers.get(stream, { filter_subjects: subject });
      found = [];
      const messages = await consumer.fetch({ max_messages: 1000, expires: 1000 });
      for await (const message of messages) {
        found.push(decode(message.data));
        if (message.info.pending === 0) break;
      }
      await consumer.delete().catch(() => false);
      if (found.length >= count) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`expected ${count} messages on ${subject} in ${stream}, found ${found.length}`);
  } finally {
    await nc.close();
  }
}

/** The attempt records the dispatcher stored for one webhook, in order. */
export function attemptRecords(prefix: string, workspaceId: string, webhookId: string, count: number, timeoutMs = 10_000, natsUrl?: string): Promise<AttemptRecord[]> {
  const t = topology({ prefix });
  return subjectMessages(t.streams.attempts, t.subjects.attempt(workspaceId, webhookId), (data) => AttemptRecord.decode(data), count, timeoutMs, natsUrl);
}

/** The breaker trips published for one workspace, in order. */
export function breakerTrips(prefix: string, workspaceId: string, count: number, timeoutMs = 10_000, natsUrl?: string): Promise<BreakerTripped[]> {
  const t = topology({ prefix });
  return subjectMessages(t.streams.breaker, t.subjects.breakerTripped(workspaceId), (data) => BreakerTripped.decode(data), count, timeoutMs, natsUrl);
}

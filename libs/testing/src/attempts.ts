import { AttemptRecord, AttemptRecordBatch, BreakerTripped } from '@webhooks/contracts';
import { connectNats, deliverShardOf, jetstream, readStored, topology } from '@webhooks/messaging';
import { testEnvironment } from './names.js';

/**
 * What `read` finds, decoded, once it finds at least `count` (tried every 100 ms until `timeoutMs`
 * passes, then rejects saying how many it found).
 */
async function untilFound<T>(what: string, read: (js: ReturnType<typeof jetstream>) => Promise<T[]>, count: number, timeoutMs: number, natsUrl: string): Promise<T[]> {
  const nc = await connectNats(natsUrl, 'test-reader');
  try {
    const js = jetstream(nc);
    const deadline = Date.now() + timeoutMs;
    let found: T[] = [];
    while (Date.now() < deadline) {
      found = await read(js);
      if (found.length >= count) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`expected ${count} ${what}, found ${found.length}`);
  } finally {
    await nc.close();
  }
}

/**
 * The messages of one subject of a stream, in order, decoded. Waits until there are at least `count`
 * (or `timeoutMs` passes, then rejects saying how many it found).
 */
export function subjectMessages<T>(stream: string, subject: string, decode: (data: Uint8Array) => T, count: number, timeoutMs = 10_000, natsUrl = testEnvironment.natsUrl): Promise<T[]> {
  return untilFound(`messages on ${subject} in ${stream}`, async (js) => (await readStored(js, stream, subject)).map((message) => decode(message.data)), count, timeoutMs, natsUrl);
}

/**
 * The attempt records the dispatcher stored for one webhook, in the order they were stored: its own
 * subject's (retries, drops) and its successes from its shard's record batches.
 */
export function attemptRecords(prefix: string, workspaceId: string, webhookId: string, count: number, timeoutMs = 10_000, natsUrl = testEnvironment.natsUrl): Promise<AttemptRecord[]> {
  const t = topology({ prefix });
  return untilFound(
    `attempt records of ${webhookId}`,
    async (js) => {
      const single = await readStored(js, t.streams.attempts, t.subjects.attempt(workspaceId, webhookId));
      const batches = await readStored(js, t.streams.attempts, t.subjects.attemptBatch(deliverShardOf(webhookId)));
      const stored = [
        ...single.map((message) => ({ seq: message.seq, records: [AttemptRecord.decode(message.data)] })),
        ...batches.map((message) => ({ seq: message.seq, records: AttemptRecordBatch.decode(message.data).records.filter((r) => r.workspaceId === workspaceId && r.webhookId === webhookId) })),
      ];
      return stored.sort((a, b) => a.seq - b.seq).flatMap((message) => message.records);
    },
    count,
    timeoutMs,
    natsUrl,
  );
}

/** The breaker trips published for one workspace, in order. */
export function breakerTrips(prefix: string, workspaceId: string, count: number, timeoutMs = 10_000, natsUrl?: string): Promise<BreakerTripped[]> {
  const t = topology({ prefix });
  return subjectMessages(t.streams.breaker, t.subjects.breakerTripped(workspaceId), (data) => BreakerTripped.decode(data), count, timeoutMs, natsUrl);
}

import { AttemptRecord } from '@webhooks/contracts';
import { connectNats, jetstream, topology } from '@webhooks/messaging';
import { testEnvironment } from './names.js';

/**
 * The attempt records the dispatcher stored for one webhook, read from the attempts stream in order.
 * Waits until at least `count` are there (or `timeoutMs` passes, then rejects with what it found).
 */
export async function attemptRecords(prefix: string, workspaceId: string, webhookId: string, count: number, timeoutMs = 10_000): Promise<AttemptRecord[]> {
  const t = topology({ prefix });
  const nc = await connectNats(testEnvironment.natsUrl, `attempts-${prefix}`);
  try {
    const js = jetstream(nc);
    const deadline = Date.now() + timeoutMs;
    let records: AttemptRecord[] = [];
    while (Date.now() < deadline) {
      const consumer = await js.consumers.get(t.streams.attempts, { filter_subjects: t.subjects.attempt(workspaceId, webhookId) });
      records = [];
      const messages = await consumer.fetch({ max_messages: 1000, expires: 1000 });
      for await (const message of messages) {
        records.push(AttemptRecord.decode(message.data));
        if (message.info.pending === 0) break;
      }
      await consumer.delete().catch(() => false);
      if (records.length >= count) return records;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`expected ${count} attempt records for webhook ${webhookId}, found ${records.length}: ${JSON.stringify(records.map((r) => [r.attemptNumber, r.decision, r.failureReason]))}`);
  } finally {
    await nc.close();
  }
}

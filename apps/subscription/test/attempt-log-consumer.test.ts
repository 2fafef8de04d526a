// The attempt-log consumer while PostgreSQL hangs: a TCP proxy between the consumer and a test database
// stalls (bytes stop, sockets stay open) for several ack_waits. The consumer's buffer stays bounded and
// holds each record once, and after the proxy resumes every record is stored exactly once. A message of
// the dispatcher's record batches is written record by record.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AttemptDecision, AttemptRecord, AttemptRecordBatch } from '@webhooks/contracts';
import { jetstream, jetstreamManager } from '@webhooks/messaging';
import { createLogger } from '@webhooks/telemetry';
import { createTestDatabase, createTestTopology, TcpProxy, type TestDatabase, type TestTopology } from '@webhooks/testing';
import { consumeAttempts } from '../src/delivery-log/attempt-log.js';
import { migrate, openOrm, type Orm } from '../src/persistence/orm.js';

const ackWaitMs = 1_000;
const maxBuffered = 40;
// Longer than ack_wait (the keep-alive must cover it) and short enough that writes fail during the stall.
const writeTimeoutMs = 1_500;

function record(deliveryId: string): AttemptRecord {
  return {
    eventId: `evt_${deliveryId}`, workspaceId: 'acme', webhookId: 'wh_1', eventType: 'contact.created', attemptNumber: 1,
    startTime: new Date(), durationMs: 12, statusCode: 200, failureReason: '', responseExcerpt: 'ok', decision: AttemptDecision.ATTEMPT_DECISION_SUCCEEDED,
    retryTime: undefined, dropReason: '', requestHeaders: {}, firstAttemptTime: new Date(), deliveryId, retryOfDeliveryId: '',
    body: Buffer.from('{}'), acceptedAt: new Date(), traceContext: {},
  };
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('attempt-log consumer during a hung PostgreSQL', () => {
  let database: TestDatabase;
  let direct: Orm;
  let proxied: Orm;
  let proxy: TcpProxy;
  let nats: TestTopology;

  before(async () => {
    database = await createTestDatabase();
    direct = await openOrm(database.url, () => {});
    await migrate(direct);
    proxy = await TcpProxy.start({ host: '127.0.0.1', port: Number(new URL(database.url).port) || 5432 });
    const url = new URL(database.url);
    url.host = proxy.address;
    proxied = await openOrm(url.toString(), () => {});
    nats = await createTestTopology();
  });

  after(async () => {
    proxy?.resume();
    await proxied?.close();
    await direct?.close();
    await proxy?.close();
    await nats?.remove();
    await database?.drop();
  });

  const count = async (table: 'attempts' | 'deliveries') => Number((await direct.em.getConnection().execute<{ n: string }[]>(`select count(*) as n from ${table}`))[0]!.n);

  it('keeps at most its bound of records, each once, and stores every record exactly once afterwards', async () => {
    const { topology: t, nc } = nats;
    const js = jetstream(nc);
    const consumer = await consumeAttempts(js, await jetstreamManager(nc), t, proxied, createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent'), { ackWaitMs, maxBuffered, writeTimeoutMs });
    try {
      const publish = async (ids: string[]) => {
        for (const id of ids) await js.publish(t.subjects.attempt('acme', 'wh_1'), AttemptRecord.encode(record(id)).finish());
      };
      // The path works before the stall.
      await publish(['dl_before']);
      await waitUntil('the first record is stored', async () => (await count('attempts')) === 1);

      proxy.stall();
      const stalled = Array.from({ length: 200 }, (_, i) => `dl_${i}`);
      await publish(stalled);
      // Watch the buffer for several ack_waits: redeliveries of records that are still buffered come in.
      let largest = 0;
      const twice = new Set<number>();
      const watchUntil = Date.now() + 5 * ackWaitMs;
      while (Date.now() < watchUntil) {
        const seqs = consumer.buffered();
        largest = Math.max(largest, seqs.length);
        const seen = new Set<number>();
        for (const seq of seqs) (seen.has(seq) ? twice : seen).add(seq);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      proxy.resume();

      assert.ok(largest <= maxBuffered, `the buffer held ${largest} records, more than its bound of ${maxBuffered}`);
      assert.deepEqual([...twice], [], 'records buffered twice (stream sequences)');

      const info = async () => (await (await jetstreamManager(nc)).consumers.info(t.streams.attempts, t.consumers.attemptLog));
      await waitUntil('every record is stored and acked', async () => {
        const state = await info();
        return (await count('attempts')) === stalled.length + 1 && state.num_pending === 0 && state.num_ack_pending === 0;
      });
      assert.equal(await count('attempts'), stalled.length + 1);
      assert.equal(await count('deliveries'), stalled.length + 1);
    } finally {
      proxy.resume();
      await consumer.stop();
    }
  });

  it('writes every record of a batch message, and a record stored both alone and in a batch once', async () => {
    const { topology: t, nc } = nats;
    const js = jetstream(nc);
    const consumer = await consumeAttempts(js, await jetstreamManager(nc), t, direct, createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent'), { ackWaitMs });
    try {
      const before = await count('attempts');
      await js.publish(t.subjects.attempt('acme', 'wh_1'), AttemptRecord.encode(record('dl_b0')).finish());
      const batch = AttemptRecordBatch.encode({ records: ['dl_b0', 'dl_b1', 'dl_b2', 'dl_b3'].map(record) }).finish();
      await js.publish(t.subjects.attemptBatch(3), batch);
      await waitUntil('the batch is stored and acked', async () => {
        const state = await (await jetstreamManager(nc)).consumers.info(t.streams.attempts, t.consumers.attemptLog);
        return state.num_pending === 0 && state.num_ack_pending === 0;
      });
      assert.equal(await count('attempts'), before + 4);
      const rows = await direct.em.getConnection().execute<{ id: string; status: string }[]>(`select id, status from deliveries where id in ('dl_b0', 'dl_b1', 'dl_b2', 'dl_b3') order by id`);
      assert.deepEqual(
        rows.map((r) => [r.id, r.status]),
        [['dl_b0', 'succeeded'], ['dl_b1', 'succeeded'], ['dl_b2', 'succeeded'], ['dl_b3', 'succeeded']],
      );
    } finally {
      await consumer.stop();
    }
  });
});

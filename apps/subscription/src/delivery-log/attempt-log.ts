// Persists the dispatcher's attempt records: a durable consumer feeds batches to one SQL statement each
// (one round trip), idempotent on (delivery, attempt number), and the records are acked only after it
// committed. A message holds one record (a webhook's subject) or many (a shard's record batch). While
// PostgreSQL is away or hangs the records wait in JetStream and are written when it returns; the process
// holds about a bounded number of records meanwhile (a pull asks for as many messages as fit, at the
// number of records per message seen so far).
import type { MikroORM } from '@mikro-orm/postgresql';
import { AttemptDecision, AttemptRecord, AttemptRecordBatch } from '@webhooks/contracts';
import { AckPolicy, DeliverPolicy, ensureConsumer, traceContextOf, traceContextOfEntries, type JetStreamClient, type JetStreamManager, type JsMsg, type Topology } from '@webhooks/messaging';
import { metrics, SpanStatusCode, trace, type Context, type Logger } from '@webhooks/telemetry';
import { withDays } from './partitions.js';

const tracer = trace.getTracer('subscription');
const bufferGauge = metrics.getMeter('subscription').createObservableGauge('webhook.attempt_log.buffered', { description: 'Attempt records the attempt log holds in memory (fetched, not yet acked)' });

/** Records per statement: messages are taken until their records reach this (at least one message). */
const maxBatch = 500;
/** One batch being written and the next one filling: enough to keep PostgreSQL busy, and no more. */
const defaultMaxBuffered = 2 * maxBatch;
/** First pause in pulling after a failed write; doubles per failure up to the maximum. */
const retryAfterFailureMs = 2_000;
const maxRetryAfterFailureMs = 16_000;
/**
 * The longest one write may take, connecting included. A connection that hangs (rather than fails)
 * would otherwise hold its batch for ever; past this the batch is handed back to JetStream and the
 * connection is thrown away. Well inside the app's 60 s ack_wait, so a batch is never redelivered while
 * it is still being written even without the keep-alive below.
 */
export const defaultWriteTimeoutMs = 30_000;
/** A pull's lifetime when no records come (the server's minimum is 1 s). */
const pullExpiresMs = 5_000;
/**
 * How long a batch that is not full waits for more records. Each statement costs PostgreSQL a parse and
 * a plan of the query below, so under a steady flow a few milliseconds of waiting turn many statements
 * of a few records into one; the log shows an attempt that much later.
 */
const batchLingerMs = 20;

const decisions: Record<AttemptDecision, string | undefined> = {
  [AttemptDecision.ATTEMPT_DECISION_SUCCEEDED]: 'succeeded',
  [AttemptDecision.ATTEMPT_DECISION_RETRY]: 'retry',
  [AttemptDecision.ATTEMPT_DECISION_DROPPED]: 'dropped',
  [AttemptDecision.ATTEMPT_DECISION_UNSPECIFIED]: undefined,
  [AttemptDecision.UNRECOGNIZED]: undefined,
};

// The statement decides each delivery's status from the batch and what is stored: succeeded is final,
// dropped is final unless it later succeeded, otherwise the delivery is retrying. Order of arrival does
// not matter, so redelivered or reordered records converge on the same rows. A delivery's created_at is
// its event's acceptance time, which each of its records carries (a record without one, which no current
// dispatcher writes, uses its start), its attempts carry it too, and its event's body is stored once for
// all the event's deliveries (partitions.ts). Per-delivery figures come from one grouping, not from a
// subquery per record: the statement's cost grows with the batch, not with its square.
const writeBatchSql = `
WITH input AS (
  SELECT r.*, coalesce(r.accepted_at, r.start_time) AS created_at FROM jsonb_to_recordset($1::jsonb) AS r(
    seq bigint, delivery_id text, workspace_id text, webhook_id text, event_id text, event_type text,
    number int, start_time timestamptz, duration_ms int, status_code int, failure_reason text,
    response_excerpt text, request_headers jsonb, decision text, retry_at timestamptz, drop_reason text,
    retry_of text, body text, accepted_at timestamptz)
),
totals AS (
  SELECT delivery_id, max(number) AS attempt_count,
    (array_agg(body) FILTER (WHERE body IS NOT NULL AND body <> ''))[1] AS body
  FROM input GROUP BY delivery_id
),
per_delivery AS (
  SELECT DISTINCT ON (i.delivery_id)
    i.delivery_id, i.workspace_id, i.webhook_id, i.event_id, i.event_type, i.retry_of, i.created_at,
    CASE i.decision WHEN 'succeeded' THEN 'succeeded' WHEN 'dropped' THEN 'dropped' ELSE 'retrying' END AS status,
    CASE WHEN i.decision = 'dropped' THEN i.drop_reason END AS drop_reason,
    t.attempt_count, t.body
  FROM input i JOIN totals t USING (delivery_id)
  ORDER BY i.delivery_id, (i.decision = 'succeeded') DESC, (i.decision = 'dropped') DESC, i.seq DESC
),
upserted AS (
  INSERT INTO deliveries AS d (id, workspace_id, webhook_id, event_id, event_type, status, drop_reason, attempt_count, retry_of_delivery_id, created_at, updated_at)
  SELECT delivery_id, workspace_id, webhook_id, event_id, event_type, status, drop_reason, attempt_count, nullif(retry_of, ''), created_at, now()
  FROM per_delivery
  ON CONFLICT (id, created_at) DO UPDATE SET
    status = CASE
      WHEN d.status = 'succeeded' THEN 'succeeded'
      WHEN excluded.status IN ('succeeded', 'dropped') THEN excluded.status
      WHEN d.status = 'dropped' THEN 'dropped'
      ELSE excluded.status END,
    drop_reason = CASE
      WHEN d.status = 'succeeded' THEN NULL
      WHEN excluded.status = 'succeeded' THEN NULL
      WHEN excluded.status = 'dropped' THEN excluded.drop_reason
      ELSE d.drop_reason END,
    attempt_count = greatest(d.attempt_count, excluded.attempt_count),
    updated_at = now()
  RETURNING 1
),
bodies AS (
  INSERT INTO event_bodies (workspace_id, event_id, created_at, body)
  SELECT DISTINCT ON (workspace_id, event_id, created_at) workspace_id, event_id, created_at, decode(body, 'base64')
  FROM per_delivery WHERE body IS NOT NULL
  ON CONFLICT DO NOTHING
),
inserted AS (
  INSERT INTO attempts (delivery_id, number, created_at, start_time, duration_ms, status_code, failure_reason, response_excerpt, request_headers, decision, retry_at)
  SELECT i.delivery_id, i.number, p.created_at, i.start_time, i.duration_ms, i.status_code, i.failure_reason, i.response_excerpt, i.request_headers, i.decision, i.retry_at
  FROM input i JOIN per_delivery p USING (delivery_id)
  ON CONFLICT (delivery_id, number, created_at) DO NOTHING
  RETURNING 1
)
SELECT (SELECT count(*) FROM upserted) AS deliveries, (SELECT count(*) FROM inserted) AS attempts`;

function row(seq: number, record: AttemptRecord) {
  return {
    seq,
    delivery_id: record.deliveryId,
    workspace_id: record.workspaceId,
    webhook_id: record.webhookId,
    event_id: record.eventId,
    event_type: record.eventType,
    number: record.attemptNumber,
    start_time: (record.startTime ?? new Date()).toISOString(),
    duration_ms: record.durationMs,
    status_code: record.statusCode,
    failure_reason: record.failureReason,
    // PostgreSQL text cannot hold NUL characters, which a response body may contain.
    response_excerpt: record.responseExcerpt.replaceAll('\u0000', ''),
    request_headers: record.requestHeaders,
    decision: decisions[record.decision] ?? 'retry',
    retry_at: record.retryTime?.toISOString() ?? null,
    drop_reason: record.dropReason || null,
    retry_of: record.retryOfDeliveryId,
    body: record.body.length > 0 ? Buffer.from(record.body).toString('base64') : null,
    accepted_at: record.acceptedAt?.toISOString() ?? null,
  };
}

/** A write that did not finish within its time: PostgreSQL or the network to it hangs. */
export class AttemptWriteTimeout extends Error {
  constructor(step: string, timeoutMs: number) {
    super(`writing attempt records: ${step} took longer than ${timeoutMs} ms; PostgreSQL or the network to it hangs`);
    this.name = 'AttemptWriteTimeout';
  }
}

/** Rejects once `timeoutMs` passed; a result that comes later is handed to `abandon` (to free what it holds). */
async function within<T>(work: Promise<T>, timeoutMs: number, step: string, abandon: (late: T) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new AttemptWriteTimeout(step, timeoutMs));
    }, timeoutMs);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
    if (timedOut) work.then(abandon, () => {});
  }
}

/**
 * Writes one batch of records in one statement; returns how many delivery rows and new attempts it
 * touched. Takes at most `timeoutMs`, connecting included; a connection that timed out is destroyed
 * rather than returned to the pool, since its statement may still be stuck on it.
 */
export async function writeAttempts(orm: MikroORM, records: readonly AttemptRecord[], timeoutMs = defaultWriteTimeoutMs): Promise<{ deliveries: number; attempts: number }> {
  if (records.length === 0) return { deliveries: 0, attempts: 0 };
  const rows = records.map((record, i) => row(i, record));
  const started = Date.now();
  const pool = await orm.em.getConnection().getNativeClient();
  const client = await within(pool.connect(), timeoutMs, 'connecting', (late) => late.release());
  try {
    // The batch goes to PostgreSQL as a bound parameter, not quoted into the SQL text: no escaping of up
    // to a megabyte of JSON in JavaScript, and no parsing of it as a literal by PostgreSQL. query_timeout
    // is pg's client-side limit: it fails the query even when no byte comes back.
    // (pg honours query_timeout per query; its typings list it only per client.)
    const run = (text: string, values: unknown[], name?: string) => client.query({ text, values, name, query_timeout: Math.max(1, timeoutMs - (Date.now() - started)) } as { text: string; values: unknown[] });
    // The days of the batch's deliveries have their partitions first (partitions.ts rule 3): the UTC day
    // is the head of each row's ISO time.
    const days = rows.map((row) => (row.accepted_at ?? row.start_time).slice(0, 10));
    const batch = JSON.stringify(rows);
    // A named (prepared) statement: each connection plans it once rather than per batch, which was a
    // quarter of PostgreSQL's time for batches of 20 records.
    const { rows: [result] } = (await withDays(orm, run, days, () => run(writeBatchSql, [batch], 'attempt-log-write'))) as { rows: { deliveries: string; attempts: string }[] };
    client.release();
    return { deliveries: Number(result!.deliveries), attempts: Number(result!.attempts) };
  } catch (error) {
    // Releasing with an error makes the pool close this connection instead of reusing it.
    client.release(error instanceof Error ? error : true);
    throw error;
  }
}

export interface AttemptLogOptions {
  /** How long JetStream waits for an ack before redelivering; the records are kept alive meanwhile. */
  readonly ackWaitMs?: number;
  /** Most records held in memory at once (fetched and not yet acked or handed back), give or take one batch message. */
  readonly maxBuffered?: number;
  readonly writeTimeoutMs?: number;
}

export interface AttemptLog {
  stop(): Promise<void>;
  /** Stream sequences of the messages held now, batch being written included (for tests and the gauge). */
  buffered(): number[];
}

interface Held {
  message: JsMsg;
  readonly records: AttemptRecord[];
  /** The trace context of each record: a batch's records carry their own, a single record's message carries it. */
  readonly contexts: Context[];
}

export async function consumeAttempts(js: JetStreamClient, jsm: JetStreamManager, topology: Topology, orm: MikroORM, logger: Logger, options: AttemptLogOptions = {}): Promise<AttemptLog> {
  // Short, since every record held is kept alive: one lost on its way to us (a NATS server went away
  // while a fetch was answered) comes back after this, not a minute later.
  const ackWaitMs = options.ackWaitMs ?? 10_000;
  const maxBuffered = options.maxBuffered ?? defaultMaxBuffered;
  const writeTimeoutMs = options.writeTimeoutMs ?? defaultWriteTimeoutMs;
  const stream = topology.streams.attempts;
  const durable = topology.consumers.attemptLog;
  const config = { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: topology.subjects.attemptsAll, ack_wait: ackWaitMs * 1_000_000, max_ack_pending: 5_000, max_deliver: -1 };
  await ensureConsumer(jsm, stream, { ...config, durable_name: durable });
  const consumer = await js.consumers.get(stream, durable);

  // Every message held, by stream sequence, with its records decoded: a redelivery of one already held
  // replaces its message (the newest delivery is the one to ack) instead of adding it again. Entries
  // leave when acked or naked.
  const held = new Map<number, Held>();
  let heldRecords = 0;
  // Records per message, averaged over what came: how many messages a pull may ask for.
  let recordsPerMessage = 1;
  const release = (seq: number) => {
    const entry = held.get(seq);
    if (!entry) return;
    heldRecords -= entry.records.length;
    held.delete(seq);
  };
  // Sequences waiting for the writer, in arrival order; the batch being written is held but not here.
  const waiting: number[] = [];
  let stopped = false;
  // No pulls until then: set by a failed write, so a PostgreSQL outage does not turn into pull traffic.
  let pullAgainAt = 0;
  let wakeWriter: (() => void) | undefined;
  let wakeReader: (() => void) | undefined;
  let pull: { stop(): void } | undefined;
  const sleep = (ms: number, onWake: (wake: () => void) => void) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      onWake(() => {
        clearTimeout(timer);
        resolve();
      });
    });

  const observe = (result: { observe(value: number): void }) => result.observe(heldRecords);
  // A message that does not decode is terminated at once: it would fail the same way every time.
  const decode = (message: JsMsg): Held | undefined => {
    try {
      if (!topology.subjects.isAttemptBatch(message.subject)) return { message, records: [AttemptRecord.decode(message.data)], contexts: [traceContextOf(message.headers)] };
      const { records } = AttemptRecordBatch.decode(message.data);
      return { message, records, contexts: records.map((record) => traceContextOfEntries(record.traceContext)) };
    } catch (error) {
      logger.error({ err: error, seq: message.seq }, 'undecodable attempt record terminated');
      message.term();
      return undefined;
    }
  };
  bufferGauge.addCallback(observe);
  // JetStream would redeliver a held record after ack_wait while it waits or is written; tell it the
  // record is still being worked on, a few times per ack_wait.
  const keepAlive = setInterval(() => {
    for (const { message } of held.values()) message.working();
  }, Math.max(100, Math.floor(ackWaitMs / 3)));

  const reader = (async () => {
    while (!stopped) {
      const room = Math.floor((maxBuffered - heldRecords) / recordsPerMessage);
      const pausedMs = pullAgainAt - Date.now();
      if (room <= 0 || pausedMs > 0) {
        // Pull again when the writer frees room, or when the pause after a failure ends.
        await sleep(pausedMs > 0 ? pausedMs : 60_000, (wake) => (wakeReader = wake));
        wakeReader = undefined;
        continue;
      }
      try {
        const messages = await consumer.fetch({ max_messages: room, expires: pullExpiresMs });
        pull = messages;
        for await (const message of messages) {
          const known = held.get(message.seq);
          if (known) {
            known.message = message;
            continue;
          }
          const entry = decode(message);
          if (!entry) continue;
          held.set(message.seq, entry);
          heldRecords += entry.records.length;
          recordsPerMessage = Math.max(1, 0.9 * recordsPerMessage + 0.1 * entry.records.length);
          waiting.push(message.seq);
          wakeWriter?.();
        }
      } catch (error) {
        if (stopped) break;
        logger.error({ err: error }, 'pulling attempt records failed; pulling again shortly');
        await sleep(retryAfterFailureMs, (wake) => (wakeReader = wake));
      } finally {
        pull = undefined;
      }
    }
  })();

  let failures = 0;
  const writer = (async () => {
    while (!stopped || waiting.length > 0) {
      if (waiting.length === 0) {
        await new Promise<void>((resolve) => (wakeWriter = resolve));
        wakeWriter = undefined;
        continue;
      }
      if (waiting.length < maxBatch && !stopped) await new Promise((resolve) => setTimeout(resolve, batchLingerMs));
      const records: AttemptRecord[] = [];
      const written: number[] = [];
      const contexts: Context[] = [];
      while (waiting.length > 0 && (written.length === 0 || records.length < maxBatch)) {
        const seq = waiting.shift()!;
        const entry = held.get(seq)!;
        records.push(...entry.records);
        contexts.push(...entry.contexts);
        written.push(seq);
      }
      // One span per record, in the trace of the event it belongs to, covering the batch's write.
      const spans = contexts.map((parent) => tracer.startSpan('attempt_log.persist', { attributes: { 'messaging.batch.message_count': records.length } }, parent));
      try {
        await writeAttempts(orm, records, writeTimeoutMs);
        for (const span of spans) span.end();
        for (const seq of written) held.get(seq)!.message.ack();
        if (failures > 0) logger.info({ failures }, 'attempt records are being written again');
        failures = 0;
      } catch (error) {
        // PostgreSQL is unreachable or hangs: hand the records back to JetStream, and stop pulling for a
        // while (longer after each failure) so the process holds no more than it has now.
        failures += 1;
        const pauseMs = Math.min(maxRetryAfterFailureMs, retryAfterFailureMs * 2 ** (failures - 1));
        pullAgainAt = Date.now() + pauseMs;
        if (failures === 1) logger.error({ err: error, records: written.length }, 'writing attempt records failed; they wait in JetStream');
        for (const span of spans) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: 'PostgreSQL write failed; retried later' });
          span.end();
        }
        for (const seq of written) held.get(seq)!.message.nak(retryAfterFailureMs);
        if (!stopped) await sleep(pauseMs, (wake) => (wakeWriter = wake));
        wakeWriter = undefined;
      } finally {
        for (const seq of written) release(seq);
        wakeReader?.();
      }
    }
  })();
  return {
    buffered: () => [...held.keys()],
    async stop() {
      stopped = true;
      pull?.stop();
      wakeReader?.();
      await reader;
      wakeWriter?.();
      await writer;
      clearInterval(keepAlive);
      bufferGauge.removeCallback(observe);
    },
  };
}

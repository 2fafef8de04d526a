// Persists the dispatcher's attempt records: a durable consumer feeds batches to one SQL statement each
// (one round trip), idempotent on (delivery, attempt number), and the records are acked only after it
// committed. While PostgreSQL is away the records wait in JetStream and are written when it returns.
import type { MikroORM } from '@mikro-orm/postgresql';
import { CompiledQuery } from 'kysely';
import { AttemptDecision, AttemptRecord } from '@webhooks/contracts';
import { AckPolicy, DeliverPolicy, ensureConsumer, traceContextOf, type JetStreamClient, type JetStreamManager, type JsMsg, type Topology } from '@webhooks/messaging';
import { SpanStatusCode, trace, type Logger } from '@webhooks/telemetry';

const tracer = trace.getTracer('subscription');

const maxBatch = 500;
const retryAfterFailureMs = 2_000;
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
// not matter, so redelivered or reordered records converge on the same rows.
const writeBatchSql = `
WITH input AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(
    seq bigint, delivery_id text, workspace_id text, webhook_id text, event_id text, event_type text,
    number int, start_time timestamptz, duration_ms int, status_code int, failure_reason text,
    response_excerpt text, request_headers jsonb, decision text, retry_at timestamptz, drop_reason text,
    retry_of text, body text, accepted_at timestamptz)
),
per_delivery AS (
  SELECT DISTINCT ON (i.delivery_id)
    i.delivery_id, i.workspace_id, i.webhook_id, i.event_id, i.event_type, i.retry_of,
    coalesce(i.accepted_at, i.start_time) AS created_at,
    CASE i.decision WHEN 'succeeded' THEN 'succeeded' WHEN 'dropped' THEN 'dropped' ELSE 'retrying' END AS status,
    CASE WHEN i.decision = 'dropped' THEN i.drop_reason END AS drop_reason,
    (SELECT max(a.number) FROM input a WHERE a.delivery_id = i.delivery_id) AS attempt_count,
    (SELECT b.body FROM input b WHERE b.delivery_id = i.delivery_id AND b.body IS NOT NULL AND b.body <> '' LIMIT 1) AS body
  FROM input i
  ORDER BY i.delivery_id, (i.decision = 'succeeded') DESC, (i.decision = 'dropped') DESC, i.seq DESC
),
upserted AS (
  INSERT INTO deliveries AS d (id, workspace_id, webhook_id, event_id, event_type, status, drop_reason, attempt_count, retry_of_delivery_id, body, created_at, updated_at)
  SELECT delivery_id, workspace_id, webhook_id, event_id, event_type, status, drop_reason, attempt_count, nullif(retry_of, ''), decode(body, 'base64'), created_at, now()
  FROM per_delivery
  ON CONFLICT (id) DO UPDATE SET
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
    body = coalesce(d.body, excluded.body),
    updated_at = now()
  RETURNING 1
),
inserted AS (
  INSERT INTO attempts (delivery_id, number, start_time, duration_ms, status_code, failure_reason, response_excerpt, request_headers, decision, retry_at)
  SELECT delivery_id, number, start_time, duration_ms, status_code, failure_reason, response_excerpt, request_headers, decision, retry_at FROM input
  ON CONFLICT (delivery_id, number) DO NOTHING
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

/** Writes one batch of records in one statement; returns how many delivery rows and new attempts it touched. */
export async function writeAttempts(orm: MikroORM, records: readonly AttemptRecord[]): Promise<{ deliveries: number; attempts: number }> {
  if (records.length === 0) return { deliveries: 0, attempts: 0 };
  const rows = records.map((record, i) => row(i, record));
  // The batch goes to PostgreSQL as a bound parameter. MikroORM's execute() would quote it into the SQL
  // text instead: escaping up to a megabyte of JSON in JavaScript, and PostgreSQL parsing it as a literal.
  const { rows: [result] } = await orm.em.getConnection().getClient().executeQuery<{ deliveries: string; attempts: string }>(CompiledQuery.raw(writeBatchSql, [JSON.stringify(rows)]));
  return { deliveries: Number(result!.deliveries), attempts: Number(result!.attempts) };
}

export async function consumeAttempts(js: JetStreamClient, jsm: JetStreamManager, topology: Topology, orm: MikroORM, logger: Logger): Promise<{ stop(): Promise<void> }> {
  const stream = topology.streams.attempts;
  const durable = topology.consumers.attemptLog;
  const config = { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: topology.subjects.attemptsAll, ack_wait: 60_000_000_000, max_ack_pending: 5_000, max_deliver: -1 };
  await ensureConsumer(jsm, stream, { ...config, durable_name: durable });
  const messages = await (await js.consumers.get(stream, durable)).consume({ max_messages: 2_000 });

  // Records pile up while a batch is being written: the next batch takes all of them (up to maxBatch).
  const pending: JsMsg[] = [];
  let wake: (() => void) | undefined;
  let stopped = false;
  const reader = (async () => {
    for await (const message of messages) {
      pending.push(message);
      wake?.();
    }
  })();
  let failing = false;
  const writer = (async () => {
    while (!stopped || pending.length > 0) {
      if (pending.length === 0) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      if (pending.length < maxBatch && !stopped) await new Promise((resolve) => setTimeout(resolve, batchLingerMs));
      const batch = pending.splice(0, maxBatch);
      const records: AttemptRecord[] = [];
      for (const message of batch) {
        try {
          records.push(AttemptRecord.decode(message.data));
        } catch (error) {
          logger.error({ err: error, seq: message.seq }, 'undecodable attempt record terminated');
          message.term();
        }
      }
      // One span per record, in the trace of the event it belongs to, covering the batch's write.
      const spans = batch.map((message) => tracer.startSpan('attempt_log.persist', { attributes: { 'messaging.batch.message_count': batch.length } }, traceContextOf(message.headers)));
      try {
        await writeAttempts(orm, records);
        for (const span of spans) span.end();
        for (const message of batch) message.ack();
        if (failing) logger.info('attempt records are being written again');
        failing = false;
      } catch (error) {
        // Most likely PostgreSQL is unreachable: hand the records back to JetStream and try again later.
        if (!failing) logger.error({ err: error, records: batch.length }, 'writing attempt records failed; they wait in JetStream');
        failing = true;
        for (const span of spans) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: 'PostgreSQL write failed; retried later' });
          span.end();
        }
        for (const message of batch) message.nak(retryAfterFailureMs);
        await new Promise((resolve) => setTimeout(resolve, retryAfterFailureMs));
      }
    }
  })();
  return {
    async stop() {
      messages.stop();
      await reader;
      stopped = true;
      wake?.();
      await writer;
    },
  };
}

// The delivery-log query benchmark: 1,000,000 attempts (333,334 deliveries of one workspace over 20
// webhooks, 9 event types, 30 days) in PostgreSQL, then ListDeliveries pages through the real gRPC API,
// with and without filters. Prints p50/p99 per scenario.
import pg from 'pg';
import { DeliveryStatus } from '@webhooks/contracts';
import { callUnary, startSystem, testToken, type RunningSystem } from '@webhooks/testing';
import { percentile } from './stats.js';

const deliveries = Number(process.env.BENCH_QUERY_DELIVERIES ?? 333_334);
const attemptsPerDelivery = 3;
const samples = Number(process.env.BENCH_QUERY_SAMPLES ?? 200);


async function load(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = Date.now();
    await client.query(`INSERT INTO workspaces (id, name, plan, notification_emails, created_at, updated_at) VALUES ('bench', 'bench', 'ENTERPRISE', '{}', now(), now())`);
    // The log is partitioned by day (the subscription's delivery-log/partitions.ts): the 30 days' partitions first.
    await client.query(`SELECT log_ensure_partitions(array(SELECT (now() AT TIME ZONE 'UTC')::date - n FROM generate_series(0, 31) n))`);
    await client.query(`
      INSERT INTO deliveries (id, workspace_id, webhook_id, event_id, event_type, status, drop_reason, attempt_count, created_at, updated_at)
      SELECT 'dl_' || lpad(g::text, 8, '0'), 'bench', 'wh_' || (g % 20), 'evt_' || g,
        (ARRAY['conversation.opened','conversation.closed','contact.created','contact.updated','contact.assignee.updated','contact.tag.updated','message.incoming','message.outgoing','comment.created'])[1 + g % 9],
        (ARRAY['succeeded','succeeded','succeeded','retrying','dropped'])[1 + g % 5], NULL, ${attemptsPerDelivery},
        now() - (g * interval '7.7 seconds'), now()
      FROM generate_series(1, $1::int) g`, [deliveries]);
    await client.query(`
      INSERT INTO attempts (delivery_id, number, created_at, start_time, duration_ms, status_code, failure_reason, response_excerpt, request_headers, decision, retry_at)
      SELECT 'dl_' || lpad(g::text, 8, '0'), n, now() - (g * interval '7.7 seconds'), now() - (g * interval '7.7 seconds') + n * interval '30 seconds', 40,
        CASE WHEN n = ${attemptsPerDelivery} THEN 200 ELSE 503 END, CASE WHEN n = ${attemptsPerDelivery} THEN '' ELSE 'status 503' END,
        'ok', '{"content-type": "application/json"}'::jsonb, CASE WHEN n = ${attemptsPerDelivery} THEN 'succeeded' ELSE 'retry' END, NULL
      FROM generate_series(1, $1::int) g, generate_series(1, ${attemptsPerDelivery}) n`, [deliveries]);
    await client.query('ANALYZE deliveries; ANALYZE attempts');
    return Date.now() - started;
  } finally {
    await client.end();
  }
}

async function measure(system: RunningSystem, name: string, filter: Record<string, unknown>, deep: boolean) {
  const times: number[] = [];
  let token = '';
  let rows = 0;
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    const page = await callUnary(system.deliveryLog, system.deliveryLog.listDeliveries, {
      workspaceId: 'bench', webhookId: '', eventType: '', status: 0, pageSize: 50, pageToken: deep ? token : '', ...filter,
    }, testToken);
    times.push(performance.now() - started);
    rows += page.deliveries.length;
    token = page.nextPageToken;
  }
  times.sort((a, b) => a - b);
  return { scenario: name, calls: samples, rowsPerPage: Math.round(rows / samples), p50ms: +percentile(times, 50).toFixed(1), p99ms: +percentile(times, 99).toFixed(1) };
}

export async function runQueryBenchmark(): Promise<Record<string, unknown>[]> {
  const system = await startSystem();
  try {
    const loadMs = await load(system.env.DATABASE_URL!);
    console.log(`loaded ${deliveries} deliveries and ${deliveries * attemptsPerDelivery} attempts in ${(loadMs / 1000).toFixed(1)} s`);
    const day = 86_400_000;
    const results = [
      await measure(system, 'first page, no filter', {}, false),
      await measure(system, `${samples} consecutive pages, no filter`, {}, true),
      await measure(system, 'by webhook', { webhookId: 'wh_7' }, false),
      await measure(system, `${samples} pages by webhook`, { webhookId: 'wh_7' }, true),
      await measure(system, 'by status dropped', { status: DeliveryStatus.DELIVERY_STATUS_DROPPED }, false),
      await measure(system, 'by event type', { eventType: 'message.incoming' }, false),
      await measure(system, 'time range (a day, 10 days ago)', { startTime: new Date(Date.now() - 11 * day), endTime: new Date(Date.now() - 10 * day) }, false),
    ];
    console.table(results);
    return results;
  } finally {
    await system.stop();
  }
}

// npm run bench: the delivery pipeline (ingest -> NATS -> dispatcher -> endpoint) against the direct
// ceiling (the same endpoint hit by undici from one process, same bodies, no queue; direct.ts) and
// against two peers doing the same deliveries with BullMQ on Redis (peers.ts).
// Prints a table and writes bench/results/<time>.json. Options (env): BENCH_EVENTS (default 20000),
// BENCH_WEBHOOKS (comma-separated, default "100,10000"), BENCH_CONCURRENCY (publishers, default 64),
// BENCH_BATCHES (events per call, comma-separated: 1 publishes with PublishEvent, more with PublishEvents;
// default "1,20"), BENCH_OTEL_SDK_DISABLED (true: the services run without the OpenTelemetry SDK),
// BENCH_TRACES (export: every service records and exports every span, to a sink that discards them;
// by default no trace endpoint is set, so no spans are made),
// BENCH_FANOUT (webhooks per event in the pipeline's fan-out row, default 5: a fifth of the events, the
// same number of deliveries; 1 leaves the row out),
// BENCH_SCENARIOS ("pipeline,backlog,query,idle,startup" by default; backlog.ts: busy webhooks, in runs
// and as backlogs, beside the ordered BullMQ peer; query.ts is the delivery-log query
// benchmark; "idle" and "startup" in idle.ts: the cost of 10,000 webhooks with no events on three
// dispatcher replicas, and how soon a new replica delivers; "burst" and "soak" in load.ts run on demand;
// "peers" runs only the direct step and the BullMQ peers, without our services),
// BENCH_SETUP_CONCURRENCY (control-plane calls in flight while creating webhooks, default 24), BENCH_REDIS_URL (or REDIS_URL; the Redis of the BullMQ peers in peers.ts, default
// redis://127.0.0.1:6379; without one the peers are skipped), BENCH_PROFILE (a folder: every service
// writes a V8 CPU profile there when it stops; bench/profile.ts summarises them).
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { callUnary, startSystem, testEnvironment, testToken, type RunningSystem } from '@webhooks/testing';
import { direct } from './direct.js';
import { natsMessagesMetric, natsPerDelivery, serviceMetrics, type ServiceMetrics, pool, processAndPostgresCpuMeter, sampleEvent, startReceiver, waitForArrivals, type Receiver } from './harness.js';
import { startGraphilePeer, graphilePeerName, type GraphilePeer } from './graphile-peer.js';
import { peerNames, startPeers, type PeerMode, type PeerResult, type PeerScenario, type Peers } from './peers.js';
import { natsServerPid } from './procfs.js';
import { percentile } from './stats.js';
import { cpuPer1000, ours, runBusyWebhookScenarios, theirs } from './backlog.js';
import { createWebhooks, deleteWebhooks } from './webhooks.js';

const here = dirname(fileURLToPath(import.meta.url));
const eventCount = Number(process.env.BENCH_EVENTS ?? 20_000);
const webhookCounts = (process.env.BENCH_WEBHOOKS ?? '100,10000').split(',').map(Number);
const publishers = Number(process.env.BENCH_CONCURRENCY ?? 64);
const batchSizes = (process.env.BENCH_BATCHES ?? '1,20').split(',').map(Number);
/** Webhooks per workspace in the fan-out row (each event goes to all of them); 1 leaves the row out. */
const fanOut = Number(process.env.BENCH_FANOUT ?? 5);

/** The nats-server the system talks to: the one listening on TEST_NATS_URL's port (4222 by default). */
const natsPort = new URL(testEnvironment.natsUrl).port || '4222';

/** An OTLP/HTTP endpoint that accepts every export and keeps nothing. */
async function startTraceSink(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function processes(system: RunningSystem, receiver: ChildProcess): Record<string, number | undefined> {
  const pids: Record<string, number | undefined> = { 'nats-server': natsServerPid(natsPort), receiver: receiver.pid, bench: process.pid };
  for (const [name, list] of system.services) pids[name] = list[0]?.pid;
  return pids;
}

/**
 * Events published to `webhooks` webhooks and delivered to the receiver. `fanOut` webhooks share a
 * workspace, so each event goes to that many of them: eventCount / fanOut events make eventCount deliveries.
 */
async function pipeline(system: RunningSystem, receiver: Receiver, webhooks: number, hangingShare: number, batchSize: number, events = eventCount, fanOut = 1) {
  const run = `${webhooks}_${Math.round(hangingShare * 100)}_${batchSize}_${Date.now().toString(36)}`;
  const setupStarted = Date.now();
  const targets = await createWebhooks(system, receiver.url, webhooks, run, fanOut);
  const setupSeconds = +((Date.now() - setupStarted) / 1000).toFixed(1);
  const hanging = targets.slice(0, Math.round(webhooks * hangingShare));
  receiver.hang(hanging.map((t) => t.path));
  const healthy = targets.slice(hanging.length);
  // Give the dispatcher a moment to create every consumer before the clock starts.
  await new Promise((r) => setTimeout(r, 2_000 + webhooks * 2));
  const published = new Map<string, number>();
  const ids = Array.from({ length: events }, (_, i) => i);
  const logBefore = await logBytes(system);
  const meter = processAndPostgresCpuMeter(processes(system, receiver.child));
  const started = Date.now();
  const calls = Array.from({ length: Math.ceil(events / batchSize) }, (_, c) => ids.slice(c * batchSize, (c + 1) * batchSize));
  await pool(calls, publishers, async (call) => {
    const batch = call.map((i) => sampleEvent(`e${i}`, targets[i % targets.length]!.workspaceId));
    const now = Date.now();
    for (const event of batch) published.set(event.id, now);
    if (batchSize === 1) await callUnary(system.ingest, system.ingest.publishEvent, { event: batch[0] }, testToken);
    else await callUnary(system.ingest, system.ingest.publishEvents, { events: batch }, testToken);
  });
  const acceptedIn = Date.now() - started;
  const healthyPaths = new Set(healthy.map((t) => t.path));
  const workspaceOf = new Map(targets.map((t) => [t.path, t.workspaceId]));
  const healthyPerWorkspace = new Map<string, number>();
  for (const path of healthyPaths) healthyPerWorkspace.set(workspaceOf.get(path)!, (healthyPerWorkspace.get(workspaceOf.get(path)!) ?? 0) + 1);
  const expected = ids.reduce((sum, i) => sum + (healthyPerWorkspace.get(targets[i % targets.length]!.workspaceId) ?? 0), 0);
  const arrivals = (await waitForArrivals(receiver, expected, 300_000)).filter((a) => healthyPaths.has(a.path));
  const last = Math.max(...arrivals.map((a) => a.at));
  const latencies = arrivals.map((a) => a.at - published.get(a.id)!).sort((a, b) => a - b);
  // The attempt log trails the deliveries by its batching: wait until it holds as many as arrived, so
  // the CPU counted includes writing them.
  const logAfter = await logBytes(system, arrivals.length);
  const cpu = meter();
  // Leave nothing behind for the next scenario: deleting a webhook drops what is still queued for it.
  await deleteWebhooks(system, targets);
  return {
    cpuSeconds: cpu,
    webhooks, setupSeconds, eventsPerCall: batchSize, hangingWebhooks: hanging.length, events, ...(fanOut > 1 ? { webhooksPerEvent: fanOut } : {}), delivered: arrivals.length, expected,
    acceptPerSecond: Math.round(events / (acceptedIn / 1000)),
    deliveriesPerSecond: Math.round(arrivals.length / ((last - started) / 1000)),
    p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99),
    logBytesPerDelivery: logBefore && logAfter ? Math.round((logAfter.bytes - logBefore.bytes) / Math.max(1, logAfter.deliveries - logBefore.deliveries)) : undefined,
  };
}

/**
 * The delivery log's size on disk (every table and partition of deliveries, attempts and event bodies,
 * indexes and TOAST included) and its number of deliveries; with `atLeast`, waits up to 30 s for that
 * many more deliveries than at the start of the scenario to be written.
 */
const logBaseline = new WeakMap<RunningSystem, number>();
async function logBytes(system: RunningSystem, atLeast?: number): Promise<{ bytes: number; deliveries: number } | undefined> {
  const client = new pg.Client({ connectionString: system.env.DATABASE_URL });
  try {
    await client.connect();
    const read = async () => {
      const { rows: [row] } = await client.query<{ bytes: string; deliveries: string }>(
        `SELECT (SELECT sum(pg_total_relation_size(oid)) FROM pg_class WHERE relkind = 'r' AND relname ~ '^(deliveries|attempts|event_bodies)') AS bytes,
                (SELECT count(*) FROM deliveries) AS deliveries`);
      return { bytes: Number(row!.bytes), deliveries: Number(row!.deliveries) };
    };
    let now = await read();
    if (atLeast === undefined) logBaseline.set(system, now.deliveries);
    const deadline = Date.now() + 30_000;
    while (atLeast !== undefined && now.deliveries - (logBaseline.get(system) ?? 0) < atLeast && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      now = await read();
    }
    return now;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
}

/** The peers at one size, each as a ratio to the direct ceiling and (when it ran) to our pipeline. */
async function peerRows(peers: Peers | undefined, graphile: GraphilePeer | undefined, receiver: Receiver, webhooks: number, batchSize: number, directPerSecond: number, pipelinePerSecond: number | undefined): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  const runs: [string, (scenario: PeerScenario) => Promise<PeerResult>][] = [
    ...(peers ? (['unordered', 'ordered'] as PeerMode[]).map((mode): [string, (scenario: PeerScenario) => Promise<PeerResult>] => [peerNames[mode], (scenario) => peers.run(mode, scenario)]) : []),
    ...(graphile ? [[graphilePeerName, (scenario: PeerScenario) => graphile.run(scenario)] as [string, (scenario: PeerScenario) => Promise<PeerResult>]] : []),
  ];
  for (const [name, runPeer] of runs) {
    let row: Record<string, unknown>;
    try {
      const result = await runPeer({ webhooks, eventsPerCall: batchSize, events: eventCount, publishers });
      row = 'skipped' in result ? result : {
        ...result, directPerSecond, ratio: +(result.deliveriesPerSecond / directPerSecond).toFixed(2),
        ...(pipelinePerSecond ? { vsPipeline: +(result.deliveriesPerSecond / pipelinePerSecond).toFixed(2) } : {}),
      };
    } catch (error) {
      // A peer that breaks (Redis gone mid-run) costs its row, not the whole bench.
      row = { scenario: name, webhooks, eventsPerCall: batchSize, skipped: `failed: ${(error as Error).message}` };
    }
    rows.push(row);
    console.log(JSON.stringify(row));
    await receiver.report();
  }
  return rows;
}

/** The pipeline's scenarios (unless `withPipeline` is false), the direct ceiling and the BullMQ peers. */
async function main(withPipeline: boolean): Promise<void> {
  const receiver = await startReceiver();
  let system: RunningSystem | undefined;
  let traceSink: Awaited<ReturnType<typeof startTraceSink>> | undefined;
  if (withPipeline) {
    const env: Record<string, string> = { MAX_WEBHOOKS_PER_WORKSPACE: '1000' };
    if (process.env.BENCH_OTEL_SDK_DISABLED) env.OTEL_SDK_DISABLED = process.env.BENCH_OTEL_SDK_DISABLED;
    // Traces exported to a collector that takes them and throws them away: what tracing every event costs.
    traceSink = process.env.BENCH_TRACES === 'export' ? await startTraceSink() : undefined;
    if (traceSink) env.OTEL_EXPORTER_OTLP_ENDPOINT = traceSink.url;
    // Node makes the profile folder only when a process exits; pids.json goes there first.
    if (process.env.BENCH_PROFILE) mkdirSync(process.env.BENCH_PROFILE, { recursive: true });
    if (process.env.BENCH_PROFILE) env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE}`;
    system = await startSystem(env);
    // Profiles are named by process id; this tells bench/profile.ts which service each one is.
    if (process.env.BENCH_PROFILE) writeFileSync(join(process.env.BENCH_PROFILE, 'pids.json'), JSON.stringify(processes(system, receiver.child)));
  }
  const peers = await startPeers(receiver);
  const graphile = process.env.BENCH_GRAPHILE === 'false' ? undefined : await startGraphilePeer(receiver);
  const results: Record<string, unknown>[] = [];
  try {
    // Warm-up, not reported: every process compiles its hot paths before the first measured scenario.
    // At most 100 webhooks: warming up does not need the minutes 10,000 take to set up.
    const warmUpWebhooks = Math.min(...webhookCounts, 100);
    if (system) await pipeline(system, receiver, warmUpWebhooks, 0, Math.max(...batchSizes), Math.min(eventCount, 5_000));
    if (peers) await peers.run('unordered', { webhooks: warmUpWebhooks, eventsPerCall: Math.max(...batchSizes), events: Math.min(eventCount, 5_000), publishers });
    if (graphile) await graphile.run({ webhooks: warmUpWebhooks, eventsPerCall: Math.max(...batchSizes), events: Math.min(eventCount, 1_000), publishers });
    await receiver.report();
    for (const webhooks of webhookCounts) {
      const ceiling = await direct(receiver.url, webhooks, eventCount, publishers);
      results.push({ scenario: 'direct', webhooks, connections: ceiling.concurrency, events: eventCount, deliveriesPerSecond: ceiling.requestsPerSecond, p50: ceiling.p50, p99: ceiling.p99 });
      console.log(JSON.stringify(results.at(-1)));
      await receiver.report();
      for (const batchSize of batchSizes) {
        let pipelinePerSecond: number | undefined;
        if (system) {
          const healthy = await withCounts(system, () => pipeline(system!, receiver, webhooks, 0, batchSize));
          pipelinePerSecond = healthy.deliveriesPerSecond;
          results.push({ scenario: 'throughput', ...healthy, directPerSecond: ceiling.requestsPerSecond, ratio: +(healthy.deliveriesPerSecond / ceiling.requestsPerSecond).toFixed(2) });
          console.log(JSON.stringify(results.at(-1)));
          await receiver.report();
          const isolation = await withCounts(system, () => pipeline(system!, receiver, webhooks, 0.1, batchSize));
          results.push({ scenario: 'isolation (10% hang)', ...isolation, healthyVsAllHealthy: +(isolation.deliveriesPerSecond / healthy.deliveriesPerSecond).toFixed(2) });
          console.log(JSON.stringify(results.at(-1)));
          await receiver.report();
          if (fanOut > 1) {
            // The same number of deliveries from fanOut times fewer events: what the log stores per event shows.
            const spread = await withCounts(system, () => pipeline(system!, receiver, webhooks, 0, batchSize, Math.ceil(eventCount / fanOut), fanOut));
            results.push({ scenario: `fan-out (${fanOut} webhooks per event)`, ...spread, vsOnePerEvent: +(spread.deliveriesPerSecond / healthy.deliveriesPerSecond).toFixed(2) });
            console.log(JSON.stringify(results.at(-1)));
            await receiver.report();
          }
        }
        results.push(...(await peerRows(peers, graphile, receiver, webhooks, batchSize, ceiling.requestsPerSecond, pipelinePerSecond)));
      }
    }
  } finally {
    await peers?.close();
    await graphile?.close();
    // A service writes its CPU profile only when it exits by itself: give a busy dispatcher time to finish.
    const stopped = Date.now();
    await system?.stop(process.env.BENCH_PROFILE ? 120_000 : undefined);
    if (process.env.BENCH_PROFILE) console.log(`services stopped in ${((Date.now() - stopped) / 1000).toFixed(1)} s`);
    receiver.child.send({ kind: 'stop' });
    traceSink?.server.close();
  }
  // Whole-system CPU per 1,000 deliveries: ours is every service, nats-server and PostgreSQL; a peer's is its
  // workers and its store (the receiver and the bench process count for neither).
  for (const row of results) {
    const cpu = row.cpuSeconds as Record<string, number> | undefined;
    if (cpu && typeof row.delivered === 'number' && row.delivered > 0) row.cpuPer1000 = cpuPer1000(cpu, 'peer workers' in cpu ? theirs : ours, row.delivered);
  }
  console.table(results.map(({ cpuSeconds: _cpu, ...row }) => row));
  const measured = results.filter((r) => r.cpuSeconds);
  if (measured.length > 0) {
    console.log('CPU seconds per process and scenario:');
    console.table(measured.map((r) => ({ scenario: `${r.scenario} ${r.webhooks}×${r.eventsPerCall}`, ...(r.cpuSeconds as object) })));
  }
  mkdirSync(join(here, 'results'), { recursive: true });
  const file = join(here, 'results', `${withPipeline ? '' : 'peers-'}${new Date().toISOString().replaceAll(':', '-')}.json`);
  writeFileSync(file, JSON.stringify({ events: eventCount, publishers, results }, null, 2));
  console.log(`wrote ${file}`);
}

/** What a pipeline scenario is measured by on the services' /metrics besides time: NATS messages, and the dispatcher's record batches. */
const countedMetrics = [natsMessagesMetric, 'webhook_attempt_record_batch_size_sum', 'webhook_attempt_record_batch_size_count'];

/**
 * A pipeline scenario's row with what its deliveries cost in counts: the messages between the services and
 * the NATS server per delivery, and how many records one stored record batch held (the dispatcher's
 * histogram webhook.attempt_record.batch_size).
 */
async function withCounts(system: RunningSystem, scenario: () => ReturnType<typeof pipeline>) {
  const before = await serviceMetrics(system, countedMetrics);
  const row = await scenario();
  const after = await serviceMetrics(system, countedMetrics);
  return { ...row, recordsPerBatch: perBatch(before, after), ...natsPerDelivery(before, after, row.delivered) };
}

function perBatch(before: ServiceMetrics | undefined, after: ServiceMetrics | undefined): number | undefined {
  const delta = (suffix: string) => (after?.dispatcher?.[`webhook_attempt_record_batch_size_${suffix}`] ?? NaN) - (before?.dispatcher?.[`webhook_attempt_record_batch_size_${suffix}`] ?? NaN);
  const batches = delta('count');
  return batches > 0 ? +(delta('sum') / batches).toFixed(1) : undefined;
}

/** Busy webhooks (backlog.ts): bursts in runs per webhook, and backlogs drained by a dispatcher that starts. */
async function busyWebhooks(): Promise<void> {
  const receiver = await startReceiver();
  const env: Record<string, string> = { MAX_WEBHOOKS_PER_WORKSPACE: '1000' };
  if (process.env.BENCH_PROFILE) env.NODE_OPTIONS = `--cpu-prof --cpu-prof-dir=${process.env.BENCH_PROFILE}`;
  const system = await startSystem(env);
  const peers = await startPeers(receiver);
  const graphile = process.env.BENCH_GRAPHILE === 'false' ? undefined : await startGraphilePeer(receiver);
  let rows: Record<string, unknown>[];
  try {
    // Warm-up, not reported, as in main().
    await pipeline(system, receiver, 100, 0, 20, 5_000);
    await receiver.report();
    rows = await runBusyWebhookScenarios(system, receiver, peers, graphile, (dispatcherPid) => {
      const pids = processes(system, receiver.child);
      return processAndPostgresCpuMeter({ ...pids, dispatcher: dispatcherPid ?? pids.dispatcher });
    });
  } finally {
    await peers?.close();
    await graphile?.close();
    await system.stop(process.env.BENCH_PROFILE ? 120_000 : undefined);
    receiver.child.send({ kind: 'stop' });
  }
  console.table(rows.map(({ cpuSeconds: _cpu, ...row }) => row));
  mkdirSync(join(here, 'results'), { recursive: true });
  const file = join(here, 'results', `backlog-${new Date().toISOString().replaceAll(':', '-')}.json`);
  writeFileSync(file, JSON.stringify(rows, null, 2));
  console.log(`wrote ${file}`);
}

const scenarios = (process.env.BENCH_SCENARIOS ?? 'pipeline,backlog,query,idle,startup').split(',');
if (scenarios.includes('pipeline')) await main(true);
else if (scenarios.includes('peers')) await main(false);
if (scenarios.includes('backlog')) await busyWebhooks();
for (const scenario of ['burst', 'soak'] as const) {
  if (!scenarios.includes(scenario)) continue;
  const load = await import('./load.js');
  const result = scenario === 'burst' ? await load.runBurst() : await load.runSoak();
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', `${scenario}-${new Date().toISOString().replaceAll(':', '-')}.json`), JSON.stringify(result, null, 2));
}
// The dispatcher at scale without events, and a new replica's start-up: one set-up for both (idle.ts).
if (scenarios.includes('idle') || scenarios.includes('startup')) {
  const { runIdleScenarios } = await import('./idle.js');
  await runIdleScenarios({ idle: scenarios.includes('idle'), startup: scenarios.includes('startup') });
}
if (scenarios.includes('query')) {
  const { runQueryBenchmark } = await import('./query.js');
  const results = await runQueryBenchmark();
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', `query-${new Date().toISOString().replaceAll(':', '-')}.json`), JSON.stringify(results, null, 2));
}

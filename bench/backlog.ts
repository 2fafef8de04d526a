// Busy webhooks, loaded the way customers load them (BENCH_SCENARIOS=backlog, in the default run):
//   burst:   runs of 20 and of 200 events per webhook over 100 webhooks, published live with PublishEvents
//            of one workspace per call (a bulk import is many events for one workspace);
//   backlog: tasks queued while no dispatcher runs, then one starts: over 100 webhooks interleaved, in
//            runs of 20 and of 200 per webhook, and over 5 and 1 busy webhook; the ordered peers (BullMQ,
//            and graphile-worker unless BENCH_GRAPHILE=false) drain the interleaved, 5 and 1 shapes on
//            the same receiver (jobs queued before their workers start).
// A drain rate counts from the first arrival to the last, so a process's start-up is not in it. Every
// row has the whole system's CPU per 1,000 deliveries: ours is every service, nats-server and PostgreSQL,
// from the first publish; a peer's is its workers and its store (redis-server or PostgreSQL), from the first enqueue (the bench
// process publishes for both and is counted for neither). Options (env): BENCH_BACKLOG_EVENTS (default
// 20000; a single webhook gets a quarter), BENCH_BACKLOG_SHAPES (which rows: "burst" and webhooks x run
// for the backlogs; default "burst,100x1,100x20,100x200,5x1,1x1").
import { callUnary, testToken, type RunningSystem } from '@webhooks/testing';
import { natsMessagesMetric, natsPerDelivery, serviceMetrics, pool, processCpuMeter, sampleEvent, waitForArrivals, type Receiver } from './harness.js';
import { graphilePeerName, type GraphilePeer } from './graphile-peer.js';
import type { PeerResult, PeerScenario, Peers } from './peers.js';
import { percentile } from './stats.js';
import { createWebhooks, deleteWebhooks, type BenchWebhook } from './webhooks.js';

const backlogEvents = Number(process.env.BENCH_BACKLOG_EVENTS ?? 20_000);
const shapes = (process.env.BENCH_BACKLOG_SHAPES ?? 'burst,100x1,100x20,100x200,5x1,1x1').split(',');
/** Events per PublishEvents call: a run of one workspace's events goes in calls of this many. */
const callSize = 20;
const publishers = 16;

/** Processes whose CPU is the system's, per side (see the opening comment). */
export const ours = ['dispatcher', 'event-ingest', 'subscription', 'notifier', 'nats-server', 'postgresql'];
/** A peer's system: its workers and its store (a peer's CPU has only its own store of the two). */
export const theirs = ['peer workers', 'redis-server', 'postgresql'];

export type Meter = () => Record<string, number>;

/** Whole-system CPU seconds per 1,000 deliveries, from a scenario's per-process CPU seconds. */
export function cpuPer1000(cpu: Record<string, number>, names: readonly string[], delivered: number): number {
  const total = names.reduce((sum, name) => sum + (Number.isFinite(cpu[name]) ? cpu[name]! : 0), 0);
  return +((total / delivered) * 1000).toFixed(2);
}

/** Which webhook (index) event `i` goes to: interleaved (run 1), or in runs of `run` events per webhook. */
function webhookOf(i: number, webhooks: number, run: number): number {
  return Math.floor(i / run) % webhooks;
}

/** Publishes `events` events as runs, each call holding events of one workspace only. */
async function publishRuns(system: RunningSystem, targets: BenchWebhook[], events: number, run: number, tag: string): Promise<Map<string, number>> {
  const published = new Map<string, number>();
  const calls: number[][] = [];
  let call: number[] = [];
  for (let i = 0; i < events; i++) {
    if (call.length > 0 && (call.length === callSize || webhookOf(i, targets.length, run) !== webhookOf(call[0]!, targets.length, run))) {
      calls.push(call);
      call = [];
    }
    call.push(i);
  }
  if (call.length > 0) calls.push(call);
  // A run's calls go in order (one publisher per run's calls would be truer still; in order suffices
  // for the shape: the webhook's tasks are queued back to back).
  await pool(calls, publishers, async (ids) => {
    const workspaceId = targets[webhookOf(ids[0]!, targets.length, run)]!.workspaceId;
    const now = Date.now();
    const batch = ids.map((i) => sampleEvent(`${tag}${i}`, workspaceId));
    for (const event of batch) published.set(event.id, now);
    await callUnary(system.ingest, system.ingest.publishEvents, { events: batch }, testToken, 60_000);
  });
  return published;
}

function rates(arrivals: { at: number; id: string }[], published: Map<string, number>, from: number) {
  const first = Math.min(...arrivals.map((a) => a.at));
  const last = Math.max(...arrivals.map((a) => a.at));
  const latencies = arrivals.map((a) => a.at - (published.get(a.id) ?? from)).sort((a, b) => a - b);
  return {
    deliveriesPerSecond: Math.round(arrivals.length / (Math.max(1, last - from) / 1000)),
    drainPerSecond: Math.round(arrivals.length / (Math.max(1, last - first) / 1000)),
    p50: percentile(latencies, 50), p99: percentile(latencies, 99),
  };
}

/**
 * Events in runs of `run` per webhook over `webhooks` webhooks, with the dispatcher running (run 1 is
 * the interleaved reference). `meter` starts the CPU meter of our processes.
 */
export async function burst(system: RunningSystem, receiver: Receiver, webhooks: number, run: number, events: number, meter: () => Meter) {
  const tag = `b${run}_${Date.now().toString(36)}_`;
  const targets = await createWebhooks(system, receiver.url, webhooks, `burst_${run}_${Date.now().toString(36)}`);
  await new Promise((r) => setTimeout(r, 2_000));
  await receiver.report();
  const cpu = meter();
  const started = Date.now();
  const published = await publishRuns(system, targets, events, run, tag);
  const arrivals = (await waitForArrivals(receiver, events, 300_000)).filter((a) => a.id.startsWith(tag));
  const cpuSeconds = cpu();
  await deleteWebhooks(system, targets);
  return {
    scenario: `burst: runs of ${run}`, webhooks, events, delivered: arrivals.length,
    ...rates(arrivals, published, started), cpuPer1000: cpuPer1000(cpuSeconds, ours, arrivals.length), cpuSeconds,
  };
}

/**
 * Tasks queued while no dispatcher runs, interleaved over `webhooks` webhooks; then one dispatcher
 * starts and drains them. The dispatchers running before are stopped first, and the new one keeps
 * running afterwards (the next scenarios need one).
 */
export async function backlog(system: RunningSystem, receiver: Receiver, webhooks: number, events: number, meter: (dispatcherPid: number | undefined) => Meter, run = 1) {
  const tag = `q${webhooks}_${run}_${Date.now().toString(36)}_`;
  const targets = await createWebhooks(system, receiver.url, webhooks, `backlog_${webhooks}_${Date.now().toString(36)}`);
  await new Promise((r) => setTimeout(r, 2_000));
  for (const dispatcher of system.services.get('dispatcher') ?? []) await dispatcher.stop();
  system.services.set('dispatcher', []);
  await receiver.report();
  // The system's CPU from the first publish (as the peer's from its first enqueue); the dispatcher's from its start.
  const systemCpu = meter(undefined);
  // The stopped dispatcher's counts went with it; the new one counts from its start.
  const natsBefore = await serviceMetrics(system, [natsMessagesMetric]);
  const published = await publishRuns(system, targets, events, run, tag);
  const dispatcher = await system.startService('dispatcher');
  const dispatcherCpu = processCpuMeter({ dispatcher: dispatcher.pid });
  const started = Date.now();
  const arrivals = (await waitForArrivals(receiver, events, 600_000)).filter((a) => a.id.startsWith(tag));
  const cpuSeconds = { ...systemCpu(), ...dispatcherCpu() };
  const nats = natsPerDelivery(natsBefore, await serviceMetrics(system, [natsMessagesMetric]), arrivals.length);
  await deleteWebhooks(system, targets);
  const { drainPerSecond, deliveriesPerSecond } = rates(arrivals, published, started);
  return {
    scenario: `backlog: ${webhooks} webhook${webhooks === 1 ? '' : 's'}${run > 1 ? `, runs of ${run}` : ''}`, webhooks, events, delivered: arrivals.length,
    drainPerSecond, fromStartPerSecond: deliveriesPerSecond,
    dispatcherCpuMsPerDelivery: +(((cpuSeconds.dispatcher ?? NaN) / arrivals.length) * 1000).toFixed(2),
    cpuPer1000: cpuPer1000(cpuSeconds, ours, arrivals.length), ...nats, cpuSeconds,
  };
}

/**
 * The same backlog drained by an ordered peer: BullMQ (a queue and a concurrency-1 worker per endpoint)
 * or graphile-worker (a named queue per endpoint); its CPU counts its workers and its store.
 */
export async function peerBacklog(name: string, runPeer: (scenario: PeerScenario) => Promise<PeerResult>, webhooks: number, events: number) {
  const result = await runPeer({ webhooks, eventsPerCall: callSize, events, publishers, backlog: true });
  if ('skipped' in result) return { scenario: `${name} backlog: ${webhooks}`, webhooks, skipped: result.skipped };
  return {
    scenario: `${name} backlog: ${webhooks}`, webhooks, events, delivered: result.delivered,
    drainPerSecond: result.drainPerSecond ?? result.deliveriesPerSecond,
    cpuPer1000: cpuPer1000(result.cpuSeconds, theirs, result.delivered), cpuSeconds: result.cpuSeconds,
  };
}

/** The scenarios of this module, in one run; prints each row as it comes and returns them all. */
export async function runBusyWebhookScenarios(system: RunningSystem, receiver: Receiver, peers: Peers | undefined, graphile: GraphilePeer | undefined, meterOf: (dispatcherPid?: number) => Meter): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  const add = (row: Record<string, unknown>) => {
    rows.push(row);
    const { cpuSeconds: _cpu, ...printed } = row;
    console.log(JSON.stringify(printed));
  };
  if (shapes.includes('burst')) for (const run of [20, 200]) add(await burst(system, receiver, 100, run, backlogEvents, () => meterOf()));
  let interleaved: number | undefined;
  for (const [webhooks, run] of shapes.filter((shape) => shape.includes('x')).map((shape) => shape.split('x').map(Number) as [number, number])) {
    const events = webhooks === 1 ? Math.round(backlogEvents / 4) : backlogEvents;
    const row = await backlog(system, receiver, webhooks, events, (pid) => meterOf(pid), run);
    if (run === 1 && webhooks === 100) interleaved = row.drainPerSecond;
    const peer = peers && run === 1 ? await peerBacklog('BullMQ ordered', (scenario) => peers.run('ordered', scenario), webhooks, events) : undefined;
    await receiver.report();
    // graphile-worker drains one named queue at 4 to 10 jobs a second here (a job waits for a worker's
    // poll): a lone webhook's row gets a few hundred events, not minutes of them.
    const durableEvents = webhooks === 1 ? Math.min(events, 300) : events;
    const durable = graphile && run === 1 ? await peerBacklog(graphilePeerName, (scenario) => graphile.run(scenario), webhooks, durableEvents) : undefined;
    await receiver.report();
    const durableRate = durable && 'drainPerSecond' in durable ? durable.drainPerSecond : undefined;
    const peerRate = peer && 'drainPerSecond' in peer ? peer.drainPerSecond : undefined;
    add({
      ...row,
      ...(run > 1 && interleaved ? { vsInterleaved: +(row.drainPerSecond / interleaved).toFixed(2) } : {}),
      ...(peerRate ? { vsOrderedBullMQ: +(row.drainPerSecond / peerRate).toFixed(2) } : {}),
      ...(durableRate ? { vsGraphileWorker: +(row.drainPerSecond / durableRate).toFixed(2) } : {}),
    });
    if (peer) add(peer);
    if (durable) add(durable);
  }
  return rows;
}


// The dispatcher at production scale with nothing to deliver (BENCH_SCENARIOS=idle), and how soon a new
// replica delivers (BENCH_SCENARIOS=startup; both share one set-up when asked together). Both run on
// demand: setting up 10,000 webhooks takes minutes.
//
// The system runs on a PRIVATE nats-server started here with its monitoring endpoint, so its CPU and its
// message counters are this system's alone (other tests on the shared server would blur both). Three
// dispatcher replicas follow BENCH_IDLE_WEBHOOKS (10000) active webhooks, 20 to a workspace (the product's
// MAX_WEBHOOKS_PER_WORKSPACE). Once every replica logged "ready", BENCH_IDLE_SETTLE_SECONDS (10) passed
// and the server's consumer count stopped moving, the idle window measures BENCH_IDLE_SECONDS (60) with
// no events: nats-server's CPU (% of one core, /proc/<pid>/stat), the messages per second it handled
// (in_msgs and out_msgs of /varz over the window: pull requests, heartbeats, KV watches...), and each
// replica's CPU % and resident memory (VmRSS) at the end. The start-up figure is in startup.ts.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PrivateNatsServer, startSystem, type RunningSystem } from '@webhooks/testing';
import { cpuSeconds, startReceiver, type Receiver } from './harness.js';
import { natsServerPid, rssMb } from './procfs.js';
import { measureStartup } from './startup.js';
import { createWebhooks, setupConcurrency, type BenchWebhook } from './webhooks.js';

const here = dirname(fileURLToPath(import.meta.url));
const webhookCount = Number(process.env.BENCH_IDLE_WEBHOOKS ?? 10_000);
const idleSeconds = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const settleSeconds = Number(process.env.BENCH_IDLE_SETTLE_SECONDS ?? 10);
const replicas = 3;
/** The product's limit (MAX_WEBHOOKS_PER_WORKSPACE default): fewer control-plane calls than one each. */
const webhooksPerWorkspace = 20;
/** Settling gives up waiting for the consumer count to stop moving after this long, and says so. */
const settleLimitMs = 120_000;

interface Varz { in_msgs: number; out_msgs: number; in_bytes: number; out_bytes: number }
interface Jsz {
  consumers: number;
  account_details?: { stream_detail?: { name: string; state: { consumer_count: number } }[] }[];
}

async function monitor<T>(server: PrivateNatsServer, path: string): Promise<T> {
  const response = await fetch(`${server.monitorUrl}${path}`);
  if (!response.ok) throw new Error(`nats-server monitoring ${path} answered ${response.status}`);
  return (await response.json()) as T;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The code measured: the commit, and whether the dispatcher's sources differed from it (the services run
 * from their builds, so a figure is only comparable with another of the same code).
 */
function measuredCode(): { commit: string; dispatcherChangedSinceCommit: boolean } | undefined {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: here }).toString().trim();
    return { commit: git('rev-parse', '--short', 'HEAD'), dispatcherChangedSinceCommit: git('status', '--porcelain', '--', '../apps/dispatcher', '../libs').length > 0 };
  } catch {
    return undefined;
  }
}

/** The system at scale: private NATS, the four services, three dispatchers, the webhooks. */
export interface ScaleSystem {
  nats: PrivateNatsServer;
  natsPid: number | undefined;
  receiver: Receiver;
  system: RunningSystem;
  targets: BenchWebhook[];
  setupSeconds: number;
}

/**
 * The consumers on the server: all of them, and those on streams other than KV buckets' (the delivery
 * and record consumers; a KV watch is an ephemeral consumer that comes and goes, so it is left out of
 * the settled test).
 */
async function consumerCounts(nats: PrivateNatsServer): Promise<{ consumers: number; streamConsumers: number }> {
  const jsz = await monitor<Jsz>(nats, '/jsz?accounts=true&streams=true');
  const streams = (jsz.account_details ?? []).flatMap((account) => account.stream_detail ?? []);
  const streamConsumers = streams.filter((stream) => !stream.name.startsWith('KV_')).reduce((sum, stream) => sum + stream.state.consumer_count, 0);
  return { consumers: jsz.consumers, streamConsumers };
}

/**
 * Waits until every replica is ready (they are: startService waits for it), `settleSeconds` passed, and
 * the count of consumers on the streams held still for 5 s: the replicas have caught up with the routing
 * table. Returns the counts and how long it took.
 */
async function settle(nats: PrivateNatsServer): Promise<{ consumers: number; streamConsumers: number; settleSeconds: number; settled: boolean }> {
  const started = Date.now();
  await sleep(settleSeconds * 1000);
  let previous = await consumerCounts(nats);
  for (;;) {
    await sleep(5_000);
    const counts = await consumerCounts(nats);
    const settled = counts.streamConsumers === previous.streamConsumers;
    if (settled || Date.now() - started > settleLimitMs) return { ...counts, settleSeconds: Math.round((Date.now() - started) / 1000), settled };
    previous = counts;
  }
}

async function startScaleSystem(): Promise<ScaleSystem> {
  const nats = await PrivateNatsServer.start({ monitoring: true });
  const receiver = await startReceiver();
  let system: RunningSystem | undefined;
  try {
    system = await startSystem({ NATS_URL: nats.url });
    // startSystem starts one dispatcher; the others join before the webhooks exist, as in production.
    for (let i = 1; i < replicas; i++) await system.startService('dispatcher');
    const started = Date.now();
    console.log(`creating ${webhookCount} webhooks (${setupConcurrency} calls in flight)`);
    const targets = await createWebhooks(system, receiver.url, webhookCount, `idle${Date.now().toString(36)}`, webhooksPerWorkspace);
    const setupSeconds = +((Date.now() - started) / 1000).toFixed(1);
    console.log(`created in ${setupSeconds} s`);
    return { nats, natsPid: natsServerPid(nats.port), receiver, system, targets, setupSeconds };
  } catch (error) {
    await system?.stop();
    receiver.child.send({ kind: 'stop' });
    await nats.remove();
    throw error;
  }
}

/** The idle window: no events, everything the system does on its own. */
async function measureIdle(scale: ScaleSystem, consumers: { consumers: number; streamConsumers: number }): Promise<{ summary: Record<string, unknown>; processes: Record<string, unknown>[] }> {
  const { nats, natsPid, receiver, system } = scale;
  const services = [...system.services.entries()].flatMap(([name, list]) => list.map((service, i) => ({ name: list.length > 1 ? `${name} ${i + 1}` : name, pid: service.pid })));
  const measured = [{ name: 'nats-server', pid: natsPid }, ...services];
  await receiver.report();
  const varzBefore = await monitor<Varz>(nats, '/varz');
  const cpuBefore = measured.map((p) => cpuSeconds(p.pid));
  const started = performance.now();
  await sleep(idleSeconds * 1000);
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = measured.map((p) => cpuSeconds(p.pid));
  const varzAfter = await monitor<Varz>(nats, '/varz');
  const deliveries = (await receiver.report()).length;
  const perSecond = (key: keyof Varz) => Math.round((varzAfter[key] - varzBefore[key]) / seconds);
  const processes = measured.map((p, i) => ({ process: p.name, cpuPercent: +((100 * (cpuAfter[i]! - cpuBefore[i]!)) / seconds).toFixed(1), rssMb: rssMb(p.pid) }));
  const summary = {
    scenario: 'idle', webhooks: scale.targets.length, dispatcherReplicas: system.services.get('dispatcher')!.length, consumers: consumers.consumers, streamConsumers: consumers.streamConsumers, seconds: Math.round(seconds),
    natsCpuPercent: processes[0]!.cpuPercent, natsInMsgsPerSecond: perSecond('in_msgs'), natsOutMsgsPerSecond: perSecond('out_msgs'),
    natsInBytesPerSecond: perSecond('in_bytes'), natsOutBytesPerSecond: perSecond('out_bytes'), natsRssMb: processes[0]!.rssMb,
    // Should be 0: nothing was published. Anything else means the window was not idle.
    deliveriesDuringWindow: deliveries,
  };
  return { summary, processes };
}

export async function runIdleScenarios(parts: { idle: boolean; startup: boolean }): Promise<Record<string, unknown>> {
  const scale = await startScaleSystem();
  try {
    const settled = await settle(scale.nats);
    if (!settled.settled) console.log(`the consumer count was still moving after ${settled.settleSeconds} s; measuring anyway`);
    const result: Record<string, unknown> = { code: measuredCode(), webhooks: scale.targets.length, webhooksPerWorkspace, setupSeconds: scale.setupSeconds, ...settled };
    if (parts.idle) {
      console.log(`idle window: ${idleSeconds} s`);
      const idle = await measureIdle(scale, settled);
      console.table([idle.summary]);
      console.table(idle.processes);
      Object.assign(result, { idle: idle.summary, processes: idle.processes });
    }
    if (parts.startup) {
      const startup = await measureStartup(scale.system, scale.receiver, scale.targets, webhooksPerWorkspace);
      console.table([startup]);
      result.startup = startup;
    }
    mkdirSync(join(here, 'results'), { recursive: true });
    const file = join(here, 'results', `idle-${new Date().toISOString().replaceAll(':', '-')}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2));
    console.log(`wrote ${file}`);
    return result;
  } finally {
    await scale.system.stop();
    scale.receiver.child.send({ kind: 'stop' });
    await scale.nats.remove();
  }
}

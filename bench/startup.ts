// The start-up figure (BENCH_SCENARIOS=startup): with three replicas following 10,000 webhooks and events
// flowing, one more dispatcher replica starts; how many seconds from its process start until it delivers?
//
// Which replica sent a request: every replica sends the same user-agent, but each holds its own keep-alive
// connections, so the receiver records each request's client port and the bench maps the new replica's
// process to the ports it holds open to the receiver (its socket inodes in /proc/<pid>/fd, looked up in
// /proc/net/tcp, sampled every 50 ms). That measures "a new replica delivers within N s of its start"
// directly, with the others still running, whatever share of the webhooks the replicas' design gives it;
// a design that hands it nothing while the others run shows up as no delivery within
// BENCH_STARTUP_TIMEOUT_SECONDS (120), not as a time.
// Also reported: seconds to its "ready" log line, its share of the deliveries over the 10 s after it
// first delivered, and a take-over: the three others stopped with SIGTERM, seconds until the new replica
// delivers and until every sampled webhook was delivered again after they exited.
// Events: one every BENCH_STARTUP_INTERVAL_MS (100), round-robin over the first BENCH_STARTUP_WORKSPACES
// (10) workspaces; each event reaches every webhook of its workspace (20), so 200 webhooks get events.
import { ServiceProcess, callUnary, testToken, type RunningSystem } from '@webhooks/testing';
import { sampleEvent, type Arrival, type Receiver } from './harness.js';
import { childPids, clientPortsTo } from './procfs.js';
import type { BenchWebhook } from './webhooks.js';

const intervalMs = Number(process.env.BENCH_STARTUP_INTERVAL_MS ?? 100);
const sampleWorkspaces = Number(process.env.BENCH_STARTUP_WORKSPACES ?? 10);
const timeoutMs = Number(process.env.BENCH_STARTUP_TIMEOUT_SECONDS ?? 120) * 1000;
/** How long the new replica's share of the deliveries is counted, from its first one. */
const shareWindowMs = 10_000;
const pollMs = 50;
const dispatcherMain = 'dispatcher/dist/main.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number | undefined) => (ms === undefined ? null : +(ms / 1000).toFixed(2));

export async function measureStartup(system: RunningSystem, receiver: Receiver, targets: BenchWebhook[], webhooksPerWorkspace: number): Promise<Record<string, unknown>> {
  const workspaces = [...new Set(targets.map((t) => t.workspaceId))].slice(0, sampleWorkspaces);
  const samplePaths = new Set(targets.filter((t) => workspaces.includes(t.workspaceId)).map((t) => t.path));
  const receiverPort = Number(new URL(receiver.url).port);
  const running = [...system.services.get('dispatcher')!];
  const runningPids = new Set(running.map((s) => s.pid));
  const arrivals: Arrival[] = [];
  const collect = async () => arrivals.push(...(await receiver.report()));
  await collect();
  arrivals.length = 0;

  // Events at a steady rate, not awaited one by one, so a slow call does not lower the rate.
  let publishing = true;
  let published = 0;
  let failedPublishes = 0;
  const run = Date.now().toString(36);
  const publisher = (async () => {
    for (let n = 0; publishing; n++) {
      const event = sampleEvent(`st_${run}_${n}`, workspaces[n % workspaces.length]!);
      callUnary(system.ingest, system.ingest.publishEvent, { event }, testToken, 30_000).then(() => published++, () => failedPublishes++);
      await sleep(intervalMs);
    }
  })();

  let replica: ServiceProcess | undefined;
  try {
    // The running replicas deliver before the clock starts.
    const flowing = Date.now() + timeoutMs;
    while (arrivals.length === 0 && Date.now() < flowing) {
      await sleep(200);
      await collect();
    }
    if (arrivals.length === 0) {
      for (const line of running.flatMap((service) => service.logs.filter((l) => l.level !== 'info' && l.level !== 'debug').slice(-5))) console.log(JSON.stringify(line));
      return { scenario: 'startup', webhooks: targets.length, skipped: `the ${running.length} running dispatchers delivered nothing within ${timeoutMs / 1000} s of the first event; no start-up figure` };
    }

    const startedAt = Date.now();
    let readyAt: number | undefined;
    let startError: Error | undefined;
    const starting = ServiceProcess.start('dispatcher', system.env, timeoutMs).then(
      (service) => {
        readyAt = Date.now();
        replica = service;
      },
      (error: Error) => (startError = error),
    );
    let pid: number | undefined;
    const ports = new Set<number>();
    const fromNewReplica = (a: Arrival) => a.at >= startedAt && ports.has(a.port);
    const samplePorts = () => {
      pid ??= childPids(dispatcherMain).find((p) => !runningPids.has(p));
      if (pid) for (const port of clientPortsTo(pid, receiverPort)) ports.add(port);
    };
    let firstDeliveryAt: number | undefined;
    while (Date.now() < startedAt + timeoutMs && !startError) {
      samplePorts();
      await collect();
      firstDeliveryAt = arrivals.find(fromNewReplica)?.at;
      if (firstDeliveryAt !== undefined && readyAt !== undefined && Date.now() >= firstDeliveryAt + shareWindowMs) break;
      await sleep(pollMs);
    }
    await starting;
    if (startError) throw startError;
    const window = firstDeliveryAt === undefined ? [] : arrivals.filter((a) => a.at >= firstDeliveryAt! && a.at < firstDeliveryAt! + shareWindowMs);

    // Take-over: only the new replica is left.
    const stoppedAt = Date.now();
    await Promise.all(running.map((service) => service.stop()));
    const exitedAt = Date.now();
    const waiting = new Set(samplePaths);
    let firstAfterStopAt: number | undefined;
    let everySampledAt: number | undefined;
    let scanned = 0;
    let deliveriesAfterStop = 0;
    while (Date.now() < exitedAt + timeoutMs && everySampledAt === undefined) {
      samplePorts();
      await collect();
      firstAfterStopAt ??= arrivals.find((a) => a.at >= stoppedAt && fromNewReplica(a))?.at;
      for (; scanned < arrivals.length; scanned++) {
        const a = arrivals[scanned]!;
        if (a.at > exitedAt) deliveriesAfterStop++;
        if (a.at > exitedAt && waiting.delete(a.path) && waiting.size === 0) everySampledAt = a.at;
      }
      await sleep(pollMs * 2);
    }
    if (everySampledAt === undefined) {
      // What the lone replica said while it did not deliver: the reason belongs in the report.
      const said = replica!.logs.filter((line) => (line.level !== 'info' && line.level !== 'debug') || /shard|lease|owner/i.test(line.msg ?? '')).slice(-15);
      console.log(`the new replica left ${waiting.size} of ${samplePaths.size} sampled webhooks undelivered ${timeoutMs / 1000} s after the others stopped; its last warnings, errors and ownership lines:`);
      for (const line of said) console.log(JSON.stringify(line));
    }
    return {
      scenario: 'startup', webhooks: targets.length, replicasRunning: running.length, sampledWebhooks: samplePaths.size, webhooksPerWorkspace, eventEveryMs: intervalMs,
      secondsToReady: seconds(readyAt! - startedAt),
      // null: the new replica delivered nothing within the timeout while the others ran.
      secondsToFirstDelivery: seconds(firstDeliveryAt === undefined ? undefined : firstDeliveryAt - startedAt),
      newReplicaShare: window.length === 0 ? 0 : +(window.filter(fromNewReplica).length / window.length).toFixed(2),
      secondsToStopOthers: seconds(exitedAt - stoppedAt),
      secondsFromStopToNewReplicaDelivery: seconds(firstAfterStopAt === undefined ? undefined : firstAfterStopAt - stoppedAt),
      secondsFromStopToEverySampledWebhook: seconds(everySampledAt === undefined ? undefined : everySampledAt - stoppedAt),
      sampledWebhooksDeliveredAfterStop: samplePaths.size - waiting.size, deliveriesAfterStop,
      published, failedPublishes,
    };
  } finally {
    publishing = false;
    await publisher;
    await replica?.stop();
  }
}

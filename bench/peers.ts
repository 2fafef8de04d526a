// The peers: the same deliveries done by BullMQ on Redis, against the same receiver, so the bench can
// print them beside our pipeline and the direct ceiling. Two ways a team would use BullMQ:
//   unordered: one queue, one worker of concurrency 64;
//   ordered:   one queue and one worker of concurrency 1 per webhook (BullMQ's way to keep each
//              endpoint's order without BullMQ Pro's groups).
// The bench process enqueues (add for one event per call, addBulk for more), the workers run in
// bench/peer-worker.ts. Redis: BENCH_REDIS_URL or REDIS_URL, else redis://127.0.0.1:6379; when none
// answers the peers are skipped with a notice. Each run uses unique queue names and obliterates them.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acceptEvent, generateSigningSecret } from '@webhooks/domain';
import { FlowProducer, Queue, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { pool, processCpuMeter, sampleEvent, waitForArrivals, type Receiver } from './harness.js';
import type { PeerCommand, PeerJob, PeerReport } from './peer-worker.js';
import { percentile } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));
export const redisUrl = process.env.BENCH_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Keys of every peer run start with this, so anything a crashed run left is easy to find. */
const prefix = 'bench-peers';
const unorderedConcurrency = 64;
/** The product's delivery deadline. */
const deliveryTimeoutMs = 5_000;
// Retries as a team would configure them for webhooks; a benchmark of healthy endpoints never uses them.
// Completed jobs are removed at once (the cheapest setting); failed ones are kept for inspection.
const jobOptions: JobsOptions = { attempts: 4, backoff: { type: 'exponential', delay: 30_000 }, removeOnComplete: true, removeOnFail: { count: 1_000 } };

export type PeerMode = 'unordered' | 'ordered';
export const peerNames: Record<PeerMode, string> = { unordered: 'BullMQ unordered', ordered: 'BullMQ ordered' };

export interface PeerScenario {
  webhooks: number; eventsPerCall: number; events: number; publishers: number;
  /** Queue every job before the workers start (a backlog), rather than while they run. */
  backlog?: boolean;
}

export type PeerResult =
  | {
      scenario: string; webhooks: number; eventsPerCall: number; events: number; delivered: number; expected: number;
      failedAttempts: number; acceptPerSecond: number; deliveriesPerSecond: number; p50: number; p95: number; p99: number;
      /** Deliveries per second from the first arrival to the last. */
      drainPerSecond: number;
      cpuSeconds: Record<string, number>;
    }
  | { scenario: string; webhooks: number; eventsPerCall: number; skipped: string };

interface RedisFacts { version: string; pid: number | undefined; maxClients: number; connectedClients: number }

/** Version, process and client limits of the Redis at `url`, or why it cannot be used. */
async function inspectRedis(url: string): Promise<RedisFacts | { unusable: string }> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  // connect() only rejects with "Connection is closed."; the cause (ECONNREFUSED, ...) comes as an event.
  let cause: string | undefined;
  client.on('error', (error: Error) => (cause ??= error.message));
  try {
    await client.connect();
    const info = await client.info();
    const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
    const version = field('redis_version') ?? '0';
    // BullMQ's own floor (RedisConnection.minimumVersion): below it every worker would throw.
    if (Number(version.split('.')[0]) < 5) return { unusable: `Redis ${version} is older than 5.0.0, the oldest BullMQ accepts` };
    // The pid only means something when that Redis runs on this machine.
    const pid = Number(field('process_id'));
    let local: number | undefined;
    try {
      if (/^(redis|valkey)-server/.test(readFileSync(`/proc/${pid}/comm`, 'utf8'))) local = pid;
    } catch {
      // another machine's Redis: its CPU is not measured
    }
    return { version, pid: local, maxClients: Number(field('maxclients') ?? Infinity), connectedClients: Number(field('connected_clients') ?? 0) };
  } catch (error) {
    return { unusable: `no Redis answered at ${url} (${cause ?? (error as Error).message})` };
  } finally {
    client.disconnect();
  }
}

/** The soft limit on open files of this process (a forked child inherits it). */
function openFilesLimit(): number {
  try {
    const soft = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft);
  } catch {
    return Infinity;
  }
}

/** Sends a peer worker process a command and waits for its answer of the expected kind. */
export function ask<Report extends { kind: string; message?: string }>(child: ChildProcess, command: { kind: string; [field: string]: unknown }, expected: Report['kind']): Promise<Report> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`the peer worker process exited (code ${code})`));
    child.once('exit', onExit);
    child.once('message', (report: Report) => {
      child.off('exit', onExit);
      if (report.kind === expected) resolve(report);
      else reject(new Error(report.kind === 'error' ? `peer worker: ${report.message}` : `peer worker answered ${report.kind}, expected ${expected}`));
    });
    child.send(command);
  });
}

/** How a peer starts and stops its workers, queues a call's jobs, and which processes its CPU row counts. */
export interface PeerDriver {
  meter(): () => Record<string, number>;
  startWorkers(): Promise<void>;
  /** Stops the workers; returns the failed attempts they counted. */
  stopWorkers(): Promise<number>;
  enqueue(jobs: PeerJob[]): Promise<void>;
}

/**
 * One peer row: the scenario's events queued a call at a time (`publishers` calls in flight), with the
 * workers running or, for a backlog, started once all are queued; then every delivery awaited at the
 * receiver and measured as our pipeline's are. Event `i` goes to webhook `i % webhooks`; its body is
 * rendered when it is queued, as event-ingest does, and is what the endpoint receives.
 */
export async function measurePeer(scenario: string, receiver: Receiver, { webhooks, eventsPerCall, events, publishers, backlog = false }: PeerScenario, run: string, driver: PeerDriver): Promise<PeerResult> {
  if (!backlog) await driver.startWorkers();
  const published = new Map<string, number>();
  const ids = Array.from({ length: events }, (_, i) => i);
  const calls = Array.from({ length: Math.ceil(events / eventsPerCall) }, (_, c) => ids.slice(c * eventsPerCall, (c + 1) * eventsPerCall));
  const meter = driver.meter();
  const started = Date.now();
  await pool(calls, publishers, async (call) => {
    const now = Date.now();
    await driver.enqueue(call.map((i) => {
      const webhook = i % webhooks;
      const eventId = `${run}_e${i}`;
      published.set(eventId, now);
      return { webhook, eventId, body: acceptEvent(sampleEvent(eventId, `bench_peer_${webhook}`), new Date(now), Number.MAX_SAFE_INTEGER).body.toString() };
    }));
  });
  const acceptedIn = Date.now() - started;
  if (backlog) await driver.startWorkers();
  const ours = `/peer/${run}/`;
  const arrivals = (await waitForArrivals(receiver, events, 300_000)).filter((a) => a.path.startsWith(ours));
  const last = Math.max(...arrivals.map((a) => a.at));
  const first = Math.min(...arrivals.map((a) => a.at));
  const cpuSeconds = meter();
  const latencies = arrivals.map((a) => a.at - published.get(a.id)!).sort((a, b) => a - b);
  const failedAttempts = await driver.stopWorkers();
  return {
    scenario, webhooks, eventsPerCall, events, delivered: arrivals.length, expected: events, failedAttempts,
    acceptPerSecond: Math.round(events / (acceptedIn / 1000)),
    deliveriesPerSecond: Math.round(arrivals.length / ((last - started) / 1000)),
    drainPerSecond: Math.round(arrivals.length / (Math.max(1, last - first) / 1000)),
    p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99),
    cpuSeconds,
  };
}

export interface Peers {
  run(mode: PeerMode, scenario: PeerScenario): Promise<PeerResult>;
  close(): Promise<void>;
}

/** Connects to Redis and starts the worker process; undefined (after printing why) when Redis is not usable. */
export async function startPeers(receiver: Receiver): Promise<Peers | undefined> {
  const facts = await inspectRedis(redisUrl);
  if ('unusable' in facts) {
    console.log(`BullMQ peers skipped: ${facts.unusable}. Start redis-server or set BENCH_REDIS_URL to include them.`);
    return undefined;
  }
  const redisPid = facts.pid;
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const worker = fork(join(here, 'peer-worker.ts'), { execArgv: ['--import', 'tsx'] });
  const fileLimit = openFilesLimit();

  async function run(mode: PeerMode, { webhooks, eventsPerCall, events, publishers, backlog = false }: PeerScenario): Promise<PeerResult> {
    const scenario = peerNames[mode];
    if (mode === 'ordered') {
      // Every worker holds its own blocking connection; the worker process also keeps one socket per busy endpoint.
      const now = await inspectRedis(redisUrl);
      if ('unusable' in now) return { scenario, webhooks, eventsPerCall, skipped: now.unusable };
      const { maxClients, connectedClients } = now;
      const needed = webhooks + 2;
      if (needed > maxClients - connectedClients) {
        return { scenario, webhooks, eventsPerCall, skipped: `needs ${needed} Redis connections (a blocking one per worker); Redis has room for ${maxClients - connectedClients} (maxclients ${maxClients})` };
      }
      if (needed + webhooks + 64 > fileLimit) {
        return { scenario, webhooks, eventsPerCall, skipped: `needs about ${needed + webhooks} sockets in one process; ulimit -n is ${fileLimit}` };
      }
    }
    const run = `${mode}_${webhooks}_${eventsPerCall}_${Date.now().toString(36)}`;
    const targets = Array.from({ length: webhooks }, (_, i) => ({ path: `/peer/${run}/${i}`, secret: generateSigningSecret() }));
    const queueNames = mode === 'unordered' ? [run] : targets.map((_, i) => `${run}_${i}`);
    const queueOf = (webhook: number) => (mode === 'unordered' ? queueNames[0]! : queueNames[webhook]!);
    const queues = new Map(queueNames.map((name) => [name, new Queue<PeerJob>(name, { connection, prefix })]));
    // Adds jobs to many queues in one transaction: the ordered peer's addBulk, since its events go to many queues.
    const flows = new FlowProducer({ connection, prefix });
    let started = false;
    const startWorkers = async () => {
      await ask<PeerReport>(worker, {
        kind: 'start', redisUrl, prefix, queues: queueNames, concurrency: mode === 'unordered' ? unorderedConcurrency : 1,
        webhooks: targets.map((t) => ({ url: receiver.url + t.path, secret: t.secret })), timeoutMs: deliveryTimeoutMs,
      }, 'ready');
      started = true;
    };
    const stopWorkers = async () => {
      started = false;
      return ((await ask<PeerReport>(worker, { kind: 'stop' }, 'stopped')) as Extract<PeerReport, { kind: 'stopped' }>).failedAttempts;
    };
    try {
      await Promise.all([...queues.values()].map((q) => q.waitUntilReady()));
      return await measurePeer(scenario, receiver, { webhooks, eventsPerCall, events, publishers, backlog }, run, {
        meter: () => processCpuMeter({ 'peer workers': worker.pid, 'redis-server': redisPid, receiver: receiver.child.pid, bench: process.pid }),
        startWorkers,
        stopWorkers,
        enqueue: async (call) => {
          const jobs = call.map((job) => ({ name: 'delivery', queueName: queueOf(job.webhook), data: job, opts: { ...jobOptions, jobId: job.eventId } }));
          if (jobs.length === 1) await queues.get(jobs[0]!.queueName)!.add(jobs[0]!.name, jobs[0]!.data, jobs[0]!.opts);
          else if (mode === 'unordered') await queues.get(queueNames[0]!)!.addBulk(jobs);
          else await flows.addBulk(jobs);
        },
      });
    } finally {
      if (started && worker.connected) await ask<PeerReport>(worker, { kind: 'stop' } satisfies PeerCommand, 'stopped').catch(() => undefined);
      // Leave nothing in Redis: obliterate removes every key of a queue, jobs still waiting or retrying included.
      await pool([...queues.values()], 16, async (q) => {
        await q.obliterate({ force: true });
        await q.close();
      });
      await flows.close();
    }
  }

  return {
    run,
    async close() {
      if (worker.connected) await new Promise((resolve) => { worker.once('exit', resolve); worker.send({ kind: 'exit' } satisfies PeerCommand); });
      await connection.quit();
    },
  };
}

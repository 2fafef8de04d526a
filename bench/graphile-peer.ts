// The durable ordered peer: the same deliveries done by graphile-worker on PostgreSQL, against the same
// receiver, as a team would keep each endpoint's order with it: a named queue per webhook (graphile-worker
// runs one job of a queue at a time, oldest first), one runner of concurrency 64 in its own process
// (graphile-peer-worker.ts), jobs added with addJobs (one statement for a call's events). It uses a
// database of its own on the bench's PostgreSQL (created at start, dropped at close); its CPU row counts
// the worker process and PostgreSQL, as BullMQ's counts its workers and redis-server.
import { fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acceptEvent, generateSigningSecret } from '@webhooks/domain';
import { createTestDatabase } from '@webhooks/testing';
import { makeWorkerUtils, runMigrations, type AddJobsJobSpec } from 'graphile-worker';
import { pool, processAndPostgresCpuMeter, sampleEvent, waitForArrivals, type Receiver } from './harness.js';
import type { GraphilePeerCommand, GraphilePeerReport } from './graphile-peer-worker.js';
import { quietLogger } from './graphile-peer-worker.js';
import type { PeerJob } from './peer-delivery.js';
import { ask, type PeerResult, type PeerScenario } from './peers.js';
import { percentile } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));
export const graphilePeerName = 'graphile-worker ordered';
const concurrency = 64;
/** The product's delivery deadline. */
const deliveryTimeoutMs = 5_000;
// Retries as a team would configure them for webhooks; a benchmark of healthy endpoints never uses them.
const maxAttempts = 4;

export interface GraphilePeer {
  run(scenario: PeerScenario): Promise<PeerResult>;
  close(): Promise<void>;
}

export async function startGraphilePeer(receiver: Receiver): Promise<GraphilePeer> {
  const database = await createTestDatabase('bench_graphile');
  await runMigrations({ connectionString: database.url, logger: quietLogger });
  const utils = await makeWorkerUtils({ connectionString: database.url, logger: quietLogger });
  const worker = fork(join(here, 'graphile-peer-worker.ts'), { execArgv: ['--import', 'tsx'] });

  async function run({ webhooks, eventsPerCall, events, publishers, backlog = false }: PeerScenario): Promise<PeerResult> {
    const run = `g_${webhooks}_${eventsPerCall}_${Date.now().toString(36)}`;
    const targets = Array.from({ length: webhooks }, (_, i) => ({ path: `/peer/${run}/${i}`, secret: generateSigningSecret() }));
    let started = false;
    const startWorker = async () => {
      await ask<GraphilePeerReport>(worker, {
        kind: 'start', connectionString: database.url, concurrency, timeoutMs: deliveryTimeoutMs,
        webhooks: targets.map((t) => ({ url: receiver.url + t.path, secret: t.secret })),
      } satisfies GraphilePeerCommand, 'ready');
      started = true;
    };
    try {
      if (!backlog) await startWorker();
      const published = new Map<string, number>();
      const ids = Array.from({ length: events }, (_, i) => i);
      const calls = Array.from({ length: Math.ceil(events / eventsPerCall) }, (_, c) => ids.slice(c * eventsPerCall, (c + 1) * eventsPerCall));
      const meter = processAndPostgresCpuMeter({ 'peer workers': worker.pid, receiver: receiver.child.pid, bench: process.pid });
      const startedAt = Date.now();
      await pool(calls, publishers, async (call) => {
        const now = Date.now();
        // The body is rendered when the event is accepted, as event-ingest does, and is what the endpoint receives.
        const jobs = call.map((i): AddJobsJobSpec => {
          const webhook = i % webhooks;
          const eventId = `ge${i}`;
          published.set(eventId, now);
          const body = acceptEvent(sampleEvent(eventId, `bench_peer_${webhook}`), new Date(now), Number.MAX_SAFE_INTEGER).body.toString();
          return { identifier: 'deliver', payload: { webhook, eventId, body } satisfies PeerJob, queueName: `${run}_${webhook}`, maxAttempts };
        });
        if (jobs.length === 1) await utils.addJob(jobs[0]!.identifier, jobs[0]!.payload, { queueName: jobs[0]!.queueName, maxAttempts });
        else await utils.addJobs(jobs);
      });
      const acceptedIn = Date.now() - startedAt;
      if (backlog) await startWorker();
      const ours = `/peer/${run}/`;
      const arrivals = (await waitForArrivals(receiver, events, 300_000)).filter((a) => a.path.startsWith(ours));
      const last = Math.max(...arrivals.map((a) => a.at));
      const first = Math.min(...arrivals.map((a) => a.at));
      const cpuSeconds = meter();
      const latencies = arrivals.map((a) => a.at - published.get(a.id)!).sort((a, b) => a - b);
      started = false;
      const { failedAttempts } = (await ask<GraphilePeerReport>(worker, { kind: 'stop' }, 'stopped')) as Extract<GraphilePeerReport, { kind: 'stopped' }>;
      return {
        scenario: graphilePeerName, webhooks, eventsPerCall, events, delivered: arrivals.length, expected: events, failedAttempts,
        acceptPerSecond: Math.round(events / (acceptedIn / 1000)),
        deliveriesPerSecond: Math.round(arrivals.length / ((last - startedAt) / 1000)),
        drainPerSecond: Math.round(arrivals.length / (Math.max(1, last - first) / 1000)),
        p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99),
        cpuSeconds,
      };
    } finally {
      if (started && worker.connected) await ask<GraphilePeerReport>(worker, { kind: 'stop' }, 'stopped').catch(() => undefined);
      // Leave nothing for the next run: jobs still queued (a run that failed) and the queues' rows.
      await utils.withPgClient((client) => client.query('DELETE FROM graphile_worker._private_jobs; DELETE FROM graphile_worker._private_job_queues'));
    }
  }

  return {
    run,
    async close() {
      if (worker.connected) await new Promise((resolve) => { worker.once('exit', resolve); worker.send({ kind: 'exit' } satisfies GraphilePeerCommand); });
      await utils.release();
      await database.drop();
    },
  };
}

// The durable ordered peer: the same deliveries done by graphile-worker on PostgreSQL, against the same
// receiver, as a team would keep each endpoint's order with it: a named queue per webhook (graphile-worker
// runs one job of a queue at a time, oldest first), one runner of concurrency 64 in its own process
// (graphile-peer-worker.ts), jobs added with addJobs (one statement for a call's events). It uses a
// database of its own on the bench's PostgreSQL (created at start, dropped at close); its CPU row counts
// the worker process and PostgreSQL, as BullMQ's counts its workers and redis-server.
import { fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSigningSecret } from '@webhooks/domain';
import { createTestDatabase } from '@webhooks/testing';
import { makeWorkerUtils, runMigrations, type AddJobsJobSpec } from 'graphile-worker';
import { processAndPostgresCpuMeter, type Receiver } from './harness.js';
import type { GraphilePeerCommand, GraphilePeerReport } from './graphile-peer-worker.js';
import { quietLogger } from './graphile-logger.js';
import { ask, measurePeer, type PeerResult, type PeerScenario } from './peers.js';

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

  async function run(scenario: PeerScenario): Promise<PeerResult> {
    const run = `g_${scenario.webhooks}_${scenario.eventsPerCall}_${Date.now().toString(36)}`;
    const targets = Array.from({ length: scenario.webhooks }, (_, i) => ({ path: `/peer/${run}/${i}`, secret: generateSigningSecret() }));
    let started = false;
    try {
      return await measurePeer(graphilePeerName, receiver, scenario, run, {
        meter: () => processAndPostgresCpuMeter({ 'peer workers': worker.pid, receiver: receiver.child.pid, bench: process.pid }),
        startWorkers: async () => {
          await ask<GraphilePeerReport>(worker, {
            kind: 'start', connectionString: database.url, concurrency, timeoutMs: deliveryTimeoutMs,
            webhooks: targets.map((t) => ({ url: receiver.url + t.path, secret: t.secret })),
          } satisfies GraphilePeerCommand, 'ready');
          started = true;
        },
        stopWorkers: async () => {
          started = false;
          return ((await ask<GraphilePeerReport>(worker, { kind: 'stop' }, 'stopped')) as Extract<GraphilePeerReport, { kind: 'stopped' }>).failedAttempts;
        },
        enqueue: async (call) => {
          const jobs = call.map((job): AddJobsJobSpec => ({ identifier: 'deliver', payload: job, queueName: `${run}_${job.webhook}`, maxAttempts }));
          if (jobs.length === 1) await utils.addJob('deliver', jobs[0]!.payload, { queueName: jobs[0]!.queueName, maxAttempts });
          else await utils.addJobs(jobs);
        },
      });
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

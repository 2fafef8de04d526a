// The BullMQ peer's workers, in their own process so their CPU time is counted apart from the bench's
// (which enqueues). Each job is one delivery (peer-delivery.ts); a failed one is retried by BullMQ.
// Driven by bench/peers.ts (peer-delivery.ts serveWorkerCommands).
import { signingKey } from '@webhooks/domain';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { postDelivery, serveWorkerCommands, type PeerJob, type WorkerCommand, type WorkerReport } from './peer-delivery.js';

export type { PeerJob } from './peer-delivery.js';

export type PeerCommand = WorkerCommand<{
  redisUrl: string;
  prefix: string;
  /** One queue served by one worker of this concurrency, or one queue per webhook, one worker each. */
  queues: string[];
  concurrency: number;
  webhooks: { url: string; secret: string }[];
  timeoutMs: number;
}>;

export type PeerReport = WorkerReport;

const userAgent = 'BullMQ-Peer-Bench/0.1.0';

let running: { connection: Redis; workers: Worker<PeerJob>[]; failedAttempts: number } | undefined;

async function start(command: Extract<PeerCommand, { kind: 'start' }>): Promise<void> {
  // One connection for every worker's ordinary commands; BullMQ adds one blocking connection per worker.
  const connection = new Redis(command.redisUrl, { maxRetriesPerRequest: null });
  const webhooks = command.webhooks.map((w) => ({ url: w.url, key: signingKey(w.secret) }));
  const state = { connection, workers: [] as Worker<PeerJob>[], failedAttempts: 0 };
  running = state;
  for (const queue of command.queues) {
    const worker = new Worker<PeerJob>(queue, (job: Job<PeerJob>) => postDelivery(webhooks[job.data.webhook]!, job.data, command.timeoutMs, userAgent), { connection, prefix: command.prefix, concurrency: command.concurrency });
    // A failed attempt is retried by BullMQ (attempts and backoff come with the job); counted, not logged.
    worker.on('failed', () => state.failedAttempts++);
    worker.on('error', (error) => console.error(`peer worker (${queue}): ${error.message}`));
    state.workers.push(worker);
  }
  await Promise.all(state.workers.map((w) => w.waitUntilReady()));
}

async function stop(): Promise<number> {
  const state = running;
  running = undefined;
  if (!state) return 0;
  await Promise.all(state.workers.map((w) => w.close()));
  await state.connection.quit();
  return state.failedAttempts;
}

serveWorkerCommands(start, stop);

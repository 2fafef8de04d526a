// The BullMQ peer's workers, in their own process so their CPU time is counted apart from the bench's
// (which enqueues). Each job is one delivery: sign the body as our dispatcher does (Standard Webhooks,
// HMAC-SHA256 over id.timestamp.body), POST it with a 5 s deadline, and throw on anything but 2xx so
// BullMQ retries the job. Driven over IPC by bench/peers.ts: start -> ready, stop -> stopped, exit.
import type { KeyObject } from 'node:crypto';
import { signatureHeaders, signingKey } from '@webhooks/domain';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';

/** What bench/peers.ts enqueues for one delivery. */
export interface PeerJob { webhook: number; eventId: string; body: string }

export type PeerCommand =
  | {
      kind: 'start';
      redisUrl: string;
      prefix: string;
      /** One queue served by one worker of this concurrency, or one queue per webhook, one worker each. */
      queues: string[];
      concurrency: number;
      webhooks: { url: string; secret: string }[];
      timeoutMs: number;
    }
  | { kind: 'stop' }
  | { kind: 'exit' };

export type PeerReport = { kind: 'ready' } | { kind: 'stopped'; failedAttempts: number } | { kind: 'error'; message: string };

const userAgent = 'BullMQ-Peer-Bench/0.1.0';

// Like the dispatcher's sender: keep-alive sockets, no cap per origin (every webhook has its own socket
// when the endpoints are busy), so the work per delivery matches ours.
const agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 });

let running: { connection: Redis; workers: Worker<PeerJob>[]; failedAttempts: number } | undefined;

async function deliver(job: Job<PeerJob>, webhooks: { url: string; key: KeyObject }[], timeoutMs: number): Promise<void> {
  const webhook = webhooks[job.data.webhook]!;
  const body = Buffer.from(job.data.body);
  const headers = { 'content-type': 'application/json', 'user-agent': userAgent, ...signatureHeaders([webhook.key], job.data.eventId, Math.floor(Date.now() / 1000), body) };
  // The deadline covers connect, headers and body, and is cleared when the attempt ends.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error(`no complete response within ${timeoutMs} ms`)), timeoutMs);
  try {
    const response = await request(webhook.url, { method: 'POST', headers, body, dispatcher: agent, signal: deadline.signal });
    await response.body.dump();
    if (response.statusCode < 200 || response.statusCode >= 300) throw new Error(`status ${response.statusCode}`);
  } finally {
    clearTimeout(timer);
  }
}

async function start(command: Extract<PeerCommand, { kind: 'start' }>): Promise<void> {
  // One connection for every worker's ordinary commands; BullMQ adds one blocking connection per worker.
  const connection = new Redis(command.redisUrl, { maxRetriesPerRequest: null });
  const webhooks = command.webhooks.map((w) => ({ url: w.url, key: signingKey(w.secret) }));
  const state = { connection, workers: [] as Worker<PeerJob>[], failedAttempts: 0 };
  running = state;
  for (const queue of command.queues) {
    const worker = new Worker<PeerJob>(queue, (job) => deliver(job, webhooks, command.timeoutMs), { connection, prefix: command.prefix, concurrency: command.concurrency });
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

function reply(report: PeerReport): void {
  process.send!(report);
}

process.on('message', (command: PeerCommand) => {
  if (command.kind === 'start') start(command).then(() => reply({ kind: 'ready' }), (error: Error) => reply({ kind: 'error', message: error.message }));
  if (command.kind === 'stop') stop().then((failedAttempts) => reply({ kind: 'stopped', failedAttempts }), (error: Error) => reply({ kind: 'error', message: error.message }));
  if (command.kind === 'exit') stop().finally(() => agent.close().finally(() => process.exit(0)));
});
// The bench went away without saying so: do not keep Redis connections open.
process.on('disconnect', () => stop().finally(() => process.exit(0)));

// The graphile-worker peer's worker, in its own process so its CPU time is counted apart from the
// bench's (which enqueues). One runner: `concurrency` jobs at once, each job one delivery
// (peer-delivery.ts); a job's named queue (one per webhook) makes graphile-worker run that webhook's jobs
// one at a time, in order. A failed job is retried by graphile-worker. Driven by bench/graphile-peer.ts
// (peer-delivery.ts serveWorkerCommands).
import { signingKey } from '@webhooks/domain';
import { run, type Runner } from 'graphile-worker';
import { quietLogger } from './graphile-logger.js';
import { postDelivery, serveWorkerCommands, type PeerJob, type WorkerCommand, type WorkerReport } from './peer-delivery.js';

export type GraphilePeerCommand = WorkerCommand<{ connectionString: string; concurrency: number; webhooks: { url: string; secret: string }[]; timeoutMs: number }>;

export type GraphilePeerReport = WorkerReport;

const userAgent = 'Graphile-Worker-Peer-Bench/0.1.0';


let running: { runner: Runner; failedAttempts: number } | undefined;

async function start(command: Extract<GraphilePeerCommand, { kind: 'start' }>): Promise<void> {
  const webhooks = command.webhooks.map((w) => ({ url: w.url, key: signingKey(w.secret) }));
  const runner = await run({
    connectionString: command.connectionString,
    concurrency: command.concurrency,
    // A connection for each job being fetched or completed at once, as graphile-worker advises.
    maxPoolSize: command.concurrency + 2,
    noHandleSignals: true,
    logger: quietLogger,
    taskList: { deliver: (payload) => postDelivery(webhooks[(payload as PeerJob).webhook]!, payload as PeerJob, command.timeoutMs, userAgent) },
  });
  const state = { runner, failedAttempts: 0 };
  runner.events.on('job:failed', () => state.failedAttempts++);
  running = state;
}

async function stop(): Promise<number> {
  const state = running;
  running = undefined;
  if (!state) return 0;
  await state.runner.stop();
  return state.failedAttempts;
}

serveWorkerCommands(start, stop);

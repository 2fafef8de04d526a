// The graphile-worker peer's worker, in its own process so its CPU time is counted apart from the
// bench's (which enqueues). One runner: `concurrency` jobs at once, each job one delivery
// (peer-delivery.ts); a job's named queue (one per webhook) makes graphile-worker run that webhook's jobs
// one at a time, in order. A failed job is retried by graphile-worker. Driven over IPC by
// bench/graphile-peer.ts: start -> ready, stop -> stopped, exit.
import { signingKey } from '@webhooks/domain';
import { Logger, run, type Runner } from 'graphile-worker';
import { peerAgent, postDelivery, type PeerJob } from './peer-delivery.js';

export type GraphilePeerCommand =
  | { kind: 'start'; connectionString: string; concurrency: number; webhooks: { url: string; secret: string }[]; timeoutMs: number }
  | { kind: 'stop' }
  | { kind: 'exit' };

export type GraphilePeerReport = { kind: 'ready' } | { kind: 'stopped'; failedAttempts: number } | { kind: 'error'; message: string };

const userAgent = 'Graphile-Worker-Peer-Bench/0.1.0';

/** Warnings and errors only: graphile-worker logs every completed job at info, which costs as much as a delivery. */
export const quietLogger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`graphile-worker peer: ${message}`);
});

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

function reply(report: GraphilePeerReport): void {
  process.send!(report);
}

process.on('message', (command: GraphilePeerCommand) => {
  if (command.kind === 'start') start(command).then(() => reply({ kind: 'ready' }), (error: Error) => reply({ kind: 'error', message: error.message }));
  if (command.kind === 'stop') stop().then((failedAttempts) => reply({ kind: 'stopped', failedAttempts }), (error: Error) => reply({ kind: 'error', message: error.message }));
  if (command.kind === 'exit') stop().finally(() => peerAgent.close().finally(() => process.exit(0)));
});
// The bench went away without saying so: do not keep PostgreSQL connections open.
process.on('disconnect', () => stop().finally(() => process.exit(0)));

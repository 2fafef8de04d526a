// What every peer's worker process shares. One delivery as each makes it, so the work per delivery matches
// our dispatcher's: sign the body (Standard Webhooks, HMAC-SHA256 over id.timestamp.body), POST it with a
// 5 s deadline over keep-alive sockets with no cap per origin, read the answer, and throw on anything but
// 2xx so the peer's queue retries the job. And the process's loop: driven over IPC by the bench (start ->
// ready, stop -> stopped, exit), stopping its workers when the bench goes away without saying so.
import type { KeyObject } from 'node:crypto';
import { signatureHeaders } from '@webhooks/domain';
import { Agent, request } from 'undici';

/** What a peer enqueues for one delivery. */
export interface PeerJob { webhook: number; eventId: string; body: string }

export interface PeerWebhook { url: string; key: KeyObject }

// Every webhook has its own socket when the endpoints are busy.
export const peerAgent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 });

export async function postDelivery(webhook: PeerWebhook, job: PeerJob, timeoutMs: number, userAgent: string): Promise<void> {
  const body = Buffer.from(job.body);
  const headers = { 'content-type': 'application/json', 'user-agent': userAgent, ...signatureHeaders([webhook.key], job.eventId, Math.floor(Date.now() / 1000), body) };
  // The deadline covers connect, headers and body, and is cleared when the attempt ends.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error(`no complete response within ${timeoutMs} ms`)), timeoutMs);
  try {
    const response = await request(webhook.url, { method: 'POST', headers, body, dispatcher: peerAgent, signal: deadline.signal });
    await response.body.dump();
    if (response.statusCode < 200 || response.statusCode >= 300) throw new Error(`status ${response.statusCode}`);
  } finally {
    clearTimeout(timer);
  }
}

/** The commands every peer worker process takes; `start` carries the peer's own settings. */
export type WorkerCommand<Start> = ({ kind: 'start' } & Start) | { kind: 'stop' } | { kind: 'exit' };

export type WorkerReport = { kind: 'ready' } | { kind: 'stopped'; failedAttempts: number } | { kind: 'error'; message: string };

/** Serves the bench's commands: `start` starts the workers, `stop` stops them and counts their failed attempts. */
export function serveWorkerCommands<Start>(start: (command: { kind: 'start' } & Start) => Promise<void>, stop: () => Promise<number>): void {
  const reply = (report: WorkerReport) => process.send!(report);
  const failed = (error: Error) => reply({ kind: 'error', message: error.message });
  process.on('message', (command: WorkerCommand<Start>) => {
    if (command.kind === 'start') start(command).then(() => reply({ kind: 'ready' }), failed);
    if (command.kind === 'stop') stop().then((failedAttempts) => reply({ kind: 'stopped', failedAttempts }), failed);
    if (command.kind === 'exit') stop().finally(() => peerAgent.close().finally(() => process.exit(0)));
  });
  // The bench went away without saying so: do not keep the store's connections open.
  process.on('disconnect', () => stop().finally(() => process.exit(0)));
}

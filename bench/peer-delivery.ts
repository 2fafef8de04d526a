// One delivery as every peer's worker makes it, so the work per delivery matches our dispatcher's: sign
// the body (Standard Webhooks, HMAC-SHA256 over id.timestamp.body), POST it with a 5 s deadline over
// keep-alive sockets with no cap per origin, read the answer, and throw on anything but 2xx so the peer's
// queue retries the job.
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

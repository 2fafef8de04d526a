// The outbound HTTP call of one attempt: undici with keep-alive pools per origin, a deadline over the
// whole response, no redirects, a bounded read of the response body, and the URL policy enforced again
// on the address the host name resolves to, at connect time (DNS rebinding cannot reach internal hosts),
// through the egress proxy when one is set (egress.ts). A request presenting a client certificate
// (mutual TLS) goes through an agent of its own, so its connections are never reused without it; the
// same agent carries the webhook's own CA bundle when it has one, so no other webhook trusts that CA.
import type { UrlPolicy } from '@webhooks/domain';
import { Agent, request } from 'undici';
import { egressConnector, type ClientIdentity } from './egress.js';

/** Bytes of the response body kept for the log. */
export const responseExcerptBytes = 4096;
/** Past this many bytes the rest of a response body is not read; the connection is closed instead. */
const maxDrainBytes = 64 * 1024;
/** An agent for a client certificate unused this long is closed. */
const identityAgentIdleMs = 5 * 60_000;
const identityAgentSweepMs = 60_000;

export interface OutboundRequest {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
  /** Defaults to POST. */
  readonly method?: 'POST';
  /** Mutual TLS: the client certificate to present, and a key naming it (e.g. webhook id and version). */
  readonly identity?: { readonly key: string; readonly certificate: ClientIdentity } | undefined;
}

export interface SendOptions {
  /** Epoch ms by which the whole response must be in (when shorter than the sender's timeout). */
  readonly deadline?: number;
  /** Bytes of the response body kept (default responseExcerptBytes). */
  readonly keepBytes?: number;
}

export type SendResult =
  | { readonly kind: 'succeeded'; readonly statusCode: number; readonly durationMs: number; readonly excerpt: string }
  | { readonly kind: 'failed'; readonly statusCode: number; readonly reason: string; readonly durationMs: number; readonly excerpt: string };

class DeadlineError extends Error {
  override readonly name = 'TimeoutError';
}

/** The attempt's reason; a timeout names the whole attempt's limit (ATTEMPT_TIMEOUT), also when part of it went to a token request. */
function failureReason(error: unknown, timeoutMs: number): string {
  const err = error as { name?: string; code?: string; message?: string; cause?: unknown };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return `timeout: no complete response within ${timeoutMs} ms`;
  const cause = (err.cause ?? err) as { code?: string; message?: string };
  const code = cause.code ?? err.code;
  if (code === 'EFORBIDDENADDRESS' || code === 'EEGRESSPROXY') return cause.message ?? 'address not allowed';
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'connection reset by the endpoint';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'DNS lookup failed for the endpoint host';
  if (code && (code.startsWith('ERR_TLS') || code.startsWith('CERT_') || code.includes('SELF_SIGNED') || code === 'DEPTH_ZERO_SELF_SIGNED_CERT')) return `TLS error: ${code}`;
  return `request failed: ${code ?? cause.message ?? err.message ?? 'unknown error'}`;
}

export class HttpSender {
  private readonly agent: Agent;
  /**
   * Agents presenting a client certificate, by identity key. Eviction: an agent unused for
   * identityAgentIdleMs is closed and removed (swept at most once a minute, on a send); a webhook whose
   * certificate changed gets a new key, so its old agent ages out the same way; close() closes all.
   */
  private readonly identityAgents = new Map<string, { agent: Agent; usedAt: number }>();
  private nextSweep = 0;

  constructor(
    private readonly policy: UrlPolicy,
    private readonly timeoutMs: number,
    private readonly options: { readonly proxyUrl?: URL | undefined } = {},
  ) {
    this.agent = this.newAgent(undefined);
  }

  private newAgent(identity: ClientIdentity | undefined): Agent {
    return new Agent({
      connect: egressConnector({ policy: this.policy, proxyUrl: this.options.proxyUrl, identity, connectTimeoutMs: this.timeoutMs }),
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
    });
  }

  private agentFor(outbound: OutboundRequest, now: number): Agent {
    if (now >= this.nextSweep) {
      this.nextSweep = now + identityAgentSweepMs;
      for (const [key, entry] of this.identityAgents) {
        if (entry.usedAt < now - identityAgentIdleMs) {
          this.identityAgents.delete(key);
          void entry.agent.close().catch(() => undefined);
        }
      }
    }
    if (!outbound.identity) return this.agent;
    let entry = this.identityAgents.get(outbound.identity.key);
    if (!entry) {
      entry = { agent: this.newAgent(outbound.identity.certificate), usedAt: now };
      this.identityAgents.set(outbound.identity.key, entry);
    }
    entry.usedAt = now;
    return entry.agent;
  }

  async send(outbound: OutboundRequest, options: SendOptions = {}): Promise<SendResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const timeoutMs = options.deadline === undefined ? this.timeoutMs : Math.max(0, Math.min(this.timeoutMs, options.deadline - Date.now()));
    const keepBytes = options.keepBytes ?? responseExcerptBytes;
    // The deadline covers connect, headers and body. Cleared when the attempt ends: AbortSignal.timeout
    // would keep a timer per attempt alive for the whole deadline and build an error when it fires.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DeadlineError()), timeoutMs);
    try {
      const response = await request(outbound.url, {
        method: outbound.method ?? 'POST',
        headers: outbound.headers,
        body: outbound.body,
        dispatcher: this.agentFor(outbound, Date.now()),
        signal: deadline.signal,
      });
      const chunks: Buffer[] = [];
      let kept = 0;
      let read = 0;
      for await (const chunk of response.body) {
        const buf = chunk as Buffer;
        read += buf.length;
        if (kept < keepBytes) {
          const part = buf.subarray(0, keepBytes - kept);
          chunks.push(part);
          kept += part.length;
        }
        if (read > Math.max(maxDrainBytes, keepBytes)) {
          response.body.destroy();
          break;
        }
      }
      const excerpt = Buffer.concat(chunks).toString('utf8');
      const statusCode = response.statusCode;
      if (statusCode >= 200 && statusCode < 300) return { kind: 'succeeded', statusCode, durationMs: elapsed(), excerpt };
      const reason = statusCode >= 300 && statusCode < 400 ? `redirect (status ${statusCode}) not followed` : `status ${statusCode}`;
      return { kind: 'failed', statusCode, reason, durationMs: elapsed(), excerpt };
    } catch (error) {
      return { kind: 'failed', statusCode: 0, reason: failureReason(error, this.timeoutMs), durationMs: elapsed(), excerpt: '' };
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    const agents = [this.agent, ...[...this.identityAgents.values()].map((entry) => entry.agent)];
    this.identityAgents.clear();
    await Promise.all(agents.map((agent) => agent.close()));
  }
}

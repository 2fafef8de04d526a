// The outbound HTTP call of one attempt: undici with keep-alive pools per origin, a deadline over the
// whole response, no redirects, a bounded read of the response body, and the URL policy enforced again
// on the address the host name resolves to, at connect time (DNS rebinding cannot reach internal hosts),
// through the egress proxy when one is set (egress.ts). Connections are kept per origin (origin-pool.ts). A request presenting a client certificate (mutual TLS) goes through connections of
// its own, so they are never reused without it; they carry the webhook's own CA bundle when it has one,
// so no other webhook trusts that CA.
import type { UrlPolicy } from '@webhooks/domain';
import { Client, request, type buildConnector } from 'undici';
import { egressConnector, type ClientIdentity } from './egress.js';
import { defaultConnectionsPerOrigin, OriginPools } from './origin-pool.js';

/** Bytes of the response body kept for the log. */
export const responseExcerptBytes = 4096;
/** Past this many bytes the rest of a response body is not read; the connection is closed instead. */
const maxDrainBytes = 64 * 1024;

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
  private readonly pools: OriginPools;
  private readonly plainConnector: buildConnector.connector;
  /**
   * Connectors presenting a client certificate, by pool entry key (origin and identity key). Eviction:
   * with their pool entry (origin-pool.ts rule 5); a webhook whose certificate changed gets a new key, so
   * its old entry ages out the same way.
   */
  private readonly identityConnectors = new Map<string, buildConnector.connector>();

  constructor(
    private readonly policy: UrlPolicy,
    private readonly timeoutMs: number,
    private readonly options: { readonly proxyUrl?: URL | undefined; readonly connectionsPerOrigin?: number } = {},
  ) {
    this.plainConnector = this.connector(undefined);
    this.pools = new OriginPools(
      (origin, key) => new Client(origin, { connect: this.identityConnectors.get(key) ?? this.plainConnector, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000, pipelining: 1 }),
      options.connectionsPerOrigin ?? defaultConnectionsPerOrigin,
      (key) => this.identityConnectors.delete(key),
    );
  }

  private connector(identity: ClientIdentity | undefined): buildConnector.connector {
    return egressConnector({ policy: this.policy, proxyUrl: this.options.proxyUrl, identity, connectTimeoutMs: this.timeoutMs });
  }

  /** The pool entry of the request: its origin, and its client certificate's key for mutual TLS. */
  private entryOf(outbound: OutboundRequest): { origin: string; key: string } {
    const origin = new URL(outbound.url).origin;
    if (!outbound.identity) return { origin, key: origin };
    const key = `${origin} ${outbound.identity.key}`;
    if (!this.identityConnectors.has(key)) this.identityConnectors.set(key, this.connector(outbound.identity.certificate));
    return { origin, key };
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
    let lease: { client: Client; release(): void } | undefined;
    try {
      const { origin, key } = this.entryOf(outbound);
      lease = this.pools.acquire(origin, key);
      const response = await request(outbound.url, {
        method: outbound.method ?? 'POST',
        headers: outbound.headers,
        body: outbound.body,
        dispatcher: lease.client,
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
      lease?.release();
    }
  }

  /** Connections of one origin (no client certificate): made, in use, and free. */
  connections(origin: string): { size: number; inUse: number; free: number } | undefined {
    return this.pools.stats(origin);
  }

  async close(): Promise<void> {
    await this.pools.close();
  }
}

// The outbound HTTP call of one attempt: undici with keep-alive pools per origin, a deadline over the
// whole response, no redirects, a bounded read of the response body, and the URL policy enforced again
// on the address the host name resolves to, at connect time (DNS rebinding cannot reach internal hosts).
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { checkResolvedAddress, type UrlPolicy } from '@webhooks/domain';
import { Agent, request } from 'undici';

/** Bytes of the response body kept for the log. */
export const responseExcerptBytes = 4096;
/** Past this many bytes the rest of a response body is not read; the connection is closed instead. */
const maxDrainBytes = 64 * 1024;

export interface OutboundRequest {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
}

export type SendResult =
  | { readonly kind: 'succeeded'; readonly statusCode: number; readonly durationMs: number; readonly excerpt: string }
  | { readonly kind: 'failed'; readonly statusCode: number; readonly reason: string; readonly durationMs: number; readonly excerpt: string };

class ForbiddenAddressError extends Error {
  readonly code = 'EFORBIDDENADDRESS';
}

class DeadlineError extends Error {
  override readonly name = 'TimeoutError';
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

function safeLookup(policy: UrlPolicy) {
  return (hostname: string, options: LookupAllOptions & { all?: boolean }, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      for (const { address } of addresses) {
        const verdict = checkResolvedAddress(address, hostname, policy);
        if (!verdict.ok) return callback(new ForbiddenAddressError(verdict.reason), []);
      }
      if (options.all) return callback(null, addresses);
      const [first] = addresses;
      callback(null, first!.address, first!.family);
    });
  };
}

function failureReason(error: unknown, timeoutMs: number): string {
  const err = error as { name?: string; code?: string; message?: string; cause?: unknown };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return `timeout: no complete response within ${timeoutMs} ms`;
  const cause = (err.cause ?? err) as { code?: string; message?: string };
  const code = cause.code ?? err.code;
  if (code === 'EFORBIDDENADDRESS') return cause.message ?? 'address not allowed';
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'connection reset by the endpoint';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'DNS lookup failed for the endpoint host';
  if (code && (code.startsWith('ERR_TLS') || code.startsWith('CERT_') || code.includes('SELF_SIGNED') || code === 'DEPTH_ZERO_SELF_SIGNED_CERT')) return `TLS error: ${code}`;
  return `request failed: ${code ?? cause.message ?? err.message ?? 'unknown error'}`;
}

export class HttpSender {
  private readonly agent: Agent;

  constructor(
    policy: UrlPolicy,
    private readonly timeoutMs: number,
  ) {
    this.agent = new Agent({
      connect: { lookup: safeLookup(policy) as never, rejectUnauthorized: true },
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
    });
  }

  async send(outbound: OutboundRequest): Promise<SendResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    // The deadline covers connect, headers and body. Cleared when the attempt ends: AbortSignal.timeout
    // would keep a timer per attempt alive for the whole deadline and build an error when it fires.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DeadlineError()), this.timeoutMs);
    try {
      const response = await request(outbound.url, {
        method: 'POST',
        headers: outbound.headers,
        body: outbound.body,
        dispatcher: this.agent,
        signal: deadline.signal,
      });
      const chunks: Buffer[] = [];
      let kept = 0;
      let read = 0;
      for await (const chunk of response.body) {
        const buf = chunk as Buffer;
        read += buf.length;
        if (kept < responseExcerptBytes) {
          const part = buf.subarray(0, responseExcerptBytes - kept);
          chunks.push(part);
          kept += part.length;
        }
        if (read > maxDrainBytes) {
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
    await this.agent.close();
  }
}

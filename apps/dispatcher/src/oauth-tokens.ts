// OAuth 2.0 client credentials (RFC 6749 4.4) for endpoints that want a bearer token. One token per
// webhook, shared by its deliveries and fetched again shortly before it expires, or once when the
// endpoint answers 401. The token request goes out through the same sender as deliveries, so the URL
// policy (connect-time check) and the egress proxy apply to it. A failed token request is a failed
// attempt whose reason says so ("oauth token: 400 invalid_client"); tokens and client secrets never
// appear in a reason, a log line or the delivery log.
//
// A token is for one endpoint origin: the cache is keyed by webhook and the origin of the URL it is sent
// to, so a webhook whose URL moves to another host never sends that host a token obtained for the old one.
//
// Eviction (tokens, keyed by webhook and endpoint origin): an entry is replaced when its credentials
// change (another fingerprint) and removed once its token has expired, by a sweep run at most once a minute; at most
// `capacity` entries are kept, the least recently used going first.
import { createHash } from 'node:crypto';
import type { EndpointCredentials } from '@webhooks/domain';
import type { HttpSender } from './http-sender.js';

export type OAuthCredentials = Extract<EndpointCredentials, { kind: 'oauth' }>;

export type TokenResult = { readonly ok: true; readonly accessToken: string } | { readonly ok: false; readonly reason: string };

/** Used when the token answer has no expires_in: the 401 refresh covers a shorter real lifetime. */
export const defaultTokenLifetimeMs = 5 * 60_000;
/** A token is not used in its last tenth of life, and never in its last minute. */
const maxRefreshMarginMs = 60_000;
/** Token answers are small; a longer one is refused rather than parsed. */
const tokenAnswerMaxBytes = 64 * 1024;
export const oauthTokenCapacity = 10_000;

/** Until when a token obtained at `obtainedAt` and valid for `lifetimeMs` is used. Pure. */
export function usableUntil(obtainedAt: number, lifetimeMs: number): number {
  return obtainedAt + lifetimeMs - Math.min(maxRefreshMarginMs, lifetimeMs / 10);
}

/** The token endpoint's answer, read (RFC 6749 5.1 and 5.2). Pure. */
export function readTokenAnswer(statusCode: number, body: string, receivedAt: number): { ok: true; accessToken: string; usableUntil: number } | { ok: false; reason: string } {
  let json: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    if (parsed && typeof parsed === 'object') json = parsed as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  if (statusCode < 200 || statusCode >= 300) {
    // Only the standard error code is repeated (RFC 6749 5.2 limits it to printable ASCII): a description
    // could echo what was sent.
    const code = typeof json?.error === 'string' && /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$/.test(json.error) ? ` ${json.error}` : '';
    return { ok: false, reason: `oauth token: ${statusCode}${code}` };
  }
  if (!json) return { ok: false, reason: `oauth token: ${statusCode} answer is not JSON` };
  const accessToken = json.access_token;
  // A token goes into a header: whitespace or control characters would break it.
  // eslint-disable-next-line no-control-regex -- matching them is the point
  if (typeof accessToken !== 'string' || accessToken === '' || /[\s\u0000-\u001f\u007f]/.test(accessToken)) return { ok: false, reason: 'oauth token: the answer has no usable access_token' };
  const tokenType = json.token_type;
  if (tokenType !== undefined && (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer')) return { ok: false, reason: `oauth token: token_type ${JSON.stringify(tokenType).slice(0, 40)} is not bearer` };
  const expiresIn = Number(json.expires_in);
  const lifetimeMs = Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn * 1000 : defaultTokenLifetimeMs;
  return { ok: true, accessToken, usableUntil: usableUntil(receivedAt, lifetimeMs) };
}

/** The token request's form body and client authentication (HTTP Basic, RFC 6749 2.3.1). Pure. */
export function tokenRequest(credentials: OAuthCredentials): { headers: Record<string, string>; body: Uint8Array } {
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (credentials.scope) form.set('scope', credentials.scope);
  if (credentials.audience) form.set('audience', credentials.audience);
  const basic = Buffer.from(`${encodeURIComponent(credentials.clientId)}:${encodeURIComponent(credentials.clientSecret)}`).toString('base64');
  return {
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', authorization: `Basic ${basic}` },
    body: new TextEncoder().encode(form.toString()),
  };
}

interface CachedToken {
  readonly fingerprint: string;
  /** Set while a request is out: concurrent askers share it. */
  pending?: Promise<TokenResult> | undefined;
  accessToken?: string;
  usableUntil: number;
}

export class OAuthTokens {
  private readonly tokens = new Map<string, CachedToken>();
  private nextSweep = 0;

  constructor(
    private readonly sender: HttpSender,
    private readonly userAgent: string,
    private readonly capacity = oauthTokenCapacity,
  ) {}

  /**
   * The webhook's current token for the endpoint at `endpointOrigin`, fetched when there is none usable
   * (or `refresh` names the one refused).
   */
  async token(webhookId: string, endpointOrigin: string, credentials: OAuthCredentials, deadline: number, refresh?: string): Promise<TokenResult> {
    const now = Date.now();
    this.sweep(now);
    const key = `${webhookId} ${endpointOrigin}`;
    const fingerprint = fingerprintOf(credentials);
    let entry = this.tokens.get(key);
    if (!entry || entry.fingerprint !== fingerprint) {
      entry = { fingerprint, usableUntil: 0 };
    }
    // Re-inserted so the Map's order stays least recently used first.
    this.tokens.delete(key);
    this.tokens.set(key, entry);
    while (this.tokens.size > this.capacity) this.tokens.delete(this.tokens.keys().next().value!);
    if (entry.pending) return entry.pending;
    if (entry.accessToken && entry.usableUntil > now && entry.accessToken !== refresh) return { ok: true, accessToken: entry.accessToken };
    const current = entry;
    const fetching = this.fetch(credentials, deadline).then((answer) => {
      current.pending = undefined;
      if (!answer.ok) return answer;
      current.accessToken = answer.accessToken;
      current.usableUntil = answer.usableUntil;
      return { ok: true as const, accessToken: answer.accessToken };
    });
    current.pending = fetching;
    return fetching;
  }

  get size(): number {
    return this.tokens.size;
  }

  private async fetch(credentials: OAuthCredentials, deadline: number): Promise<ReturnType<typeof readTokenAnswer>> {
    const request = tokenRequest(credentials);
    const result = await this.sender.send(
      { url: credentials.tokenUrl, headers: { ...request.headers, 'user-agent': this.userAgent }, body: request.body },
      { deadline, keepBytes: tokenAnswerMaxBytes },
    );
    if (result.kind === 'failed' && result.statusCode === 0) return { ok: false, reason: `oauth token: ${result.reason}` };
    return readTokenAnswer(result.statusCode, result.excerpt, Date.now());
  }

  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + 60_000;
    for (const [key, entry] of this.tokens) if (!entry.pending && entry.usableUntil <= now) this.tokens.delete(key);
  }
}

/** Tells credentials apart without keeping the secret in another form anyone could read back. */
function fingerprintOf(credentials: OAuthCredentials): string {
  return createHash('sha256').update(JSON.stringify(credentials)).digest('base64url');
}

// One attempt of one delivery, as stages: build the signed request, authenticate it (endpoint-auth),
// send it, decide what comes next. The decision is made by the pure retry policy; the consumer only
// applies it. An attempt's HTTP calls (a token request, the delivery, a token refresh after a 401 and the
// delivery again) all fit inside one ATTEMPT_TIMEOUT deadline.
import type { KeyObject } from 'node:crypto';
import type { DeliveryTask, Route } from '@webhooks/contracts';
import { checkEndpointUrl, decodeEndpointCredentials, nextAttempt, redactedHeaderValue, signatureHeaders, signingKey, type EndpointCredentials, type RetryPolicy, type SecretBox, type UrlPolicy } from '@webhooks/domain';
import type { HttpSender, OutboundRequest, SendResult } from './http-sender.js';
import { OAuthTokens, type OAuthCredentials } from './oauth-tokens.js';

export const userAgent = 'WebhookPlatform-Dispatcher/0.1.0';

export type Decision =
  | { readonly kind: 'succeeded' }
  | { readonly kind: 'retry'; readonly delayMs: number; readonly retryAt: number }
  | { readonly kind: 'dropped'; readonly reason: string };

export interface AttemptResult {
  readonly startedAt: Date;
  readonly result: SendResult;
  readonly decision: Decision;
  /** What was sent, with custom header values redacted (they may hold the customer's credentials). */
  readonly loggedHeaders: Record<string, string>;
}

/** What a route needs on every attempt, worked out once per version of the route. */
interface PreparedRoute {
  readonly secrets: readonly { readonly key: KeyObject; readonly expiresAt: number }[];
  /** Undefined when the URL (and a token URL) passes the policy; otherwise why not. */
  readonly refusal: string | undefined;
  readonly auth: PreparedAuth | undefined;
}

/** A route's endpoint authentication, ready to apply. */
type PreparedAuth =
  | { readonly kind: 'basic'; readonly authorization: string }
  | { readonly kind: 'oauth'; readonly credentials: OAuthCredentials }
  | { readonly kind: 'mtls'; readonly identity: NonNullable<OutboundRequest['identity']> };

/** Logged and recorded in place of a credential, the same placeholder the control plane answers with. */
const redacted = redactedHeaderValue;

export class Deliverer {
  // Keyed by the Route object: the routing table replaces it on every change, so stale entries go with it.
  private readonly prepared = new WeakMap<Route, PreparedRoute>();
  private readonly tokens: OAuthTokens;

  constructor(
    private readonly sender: HttpSender,
    private readonly secretBox: SecretBox,
    private readonly urlPolicy: UrlPolicy,
    private readonly retryPolicy: RetryPolicy,
    /** ATTEMPT_TIMEOUT: every HTTP call of one attempt together. */
    private readonly attemptTimeoutMs: number,
  ) {
    this.tokens = new OAuthTokens(sender, userAgent);
  }

  async attempt(task: DeliveryTask, route: Route, attempt: number, firstAttemptAt: number): Promise<AttemptResult> {
    const startedAt = new Date();
    const prepared = this.prepareRoute(route);
    const { outbound, loggedHeaders } = this.prepare(task, route, prepared, startedAt);
    const result: SendResult =
      prepared.refusal === undefined ? await this.send(route, prepared, outbound, startedAt.getTime() + this.attemptTimeoutMs) : { kind: 'failed', statusCode: 0, reason: prepared.refusal, durationMs: 0, excerpt: '' };
    return { startedAt, result, loggedHeaders, decision: this.decide(result, attempt, firstAttemptAt) };
  }

  /** Sends with the route's endpoint authentication; an OAuth token refused with 401 is replaced once. */
  private async send(route: Route, prepared: PreparedRoute, outbound: OutboundRequest, deadline: number): Promise<SendResult> {
    const auth = prepared.auth;
    if (auth?.kind !== 'oauth') return this.sender.send(outbound, { deadline });
    const started = Date.now();
    const failed = (reason: string): SendResult => ({ kind: 'failed', statusCode: 0, reason, durationMs: Date.now() - started, excerpt: '' });
    const origin = new URL(outbound.url).origin;
    const token = await this.tokens.token(route.webhookId, origin, auth.credentials, deadline);
    if (!token.ok) return failed(token.reason);
    const first = await this.sender.send(withBearer(outbound, token.accessToken), { deadline });
    if (first.statusCode !== 401) return first;
    const fresh = await this.tokens.token(route.webhookId, origin, auth.credentials, deadline, token.accessToken);
    if (!fresh.ok) return failed(`status 401; then ${fresh.reason}`);
    const second = await this.sender.send(withBearer(outbound, fresh.accessToken), { deadline });
    return { ...second, durationMs: Date.now() - started };
  }

  private decide(result: SendResult, attempt: number, firstAttemptAt: number): Decision {
    if (result.kind === 'succeeded') return { kind: 'succeeded' };
    const next = nextAttempt(attempt, firstAttemptAt, Date.now(), this.retryPolicy);
    return next.kind === 'retry' ? { kind: 'retry', delayMs: next.delayMs, retryAt: next.retryAt } : { kind: 'dropped', reason: next.reason };
  }

  private prepare(task: DeliveryTask, route: Route, prepared: PreparedRoute, now: Date): { outbound: OutboundRequest; loggedHeaders: Record<string, string> } {
    // The current secret, and the previous one while its rotation grace period lasts.
    const secrets = prepared.secrets.filter((s) => s.expiresAt > now.getTime()).map((s) => s.key);
    const signed = signatureHeaders(secrets, task.eventId, Math.floor(now.getTime() / 1000), task.body);
    const headers: Record<string, string> = { ...route.headers, 'content-type': 'application/json', 'user-agent': userAgent, ...signed };
    const loggedHeaders: Record<string, string> = { 'content-type': 'application/json', 'user-agent': userAgent, ...signed };
    for (const name of Object.keys(route.headers)) loggedHeaders[name] = redacted;
    const auth = prepared.auth;
    if (auth?.kind === 'basic') {
      headers.authorization = auth.authorization;
      loggedHeaders.authorization = redacted;
    } else if (auth?.kind === 'oauth') {
      loggedHeaders.authorization = redacted;
    }
    const identity = auth?.kind === 'mtls' ? auth.identity : undefined;
    return { outbound: { url: route.url, headers, body: task.body, identity }, loggedHeaders };
  }

  private prepareRoute(route: Route): PreparedRoute {
    let prepared = this.prepared.get(route);
    if (!prepared) {
      const verdict = checkEndpointUrl(route.url, this.urlPolicy);
      const credentials = route.auth ? decodeEndpointCredentials(this.secretBox.open(route.auth.encrypted)) : undefined;
      const tokenVerdict = credentials?.kind === 'oauth' ? checkEndpointUrl(credentials.tokenUrl, this.urlPolicy) : undefined;
      prepared = {
        secrets: route.secrets.map((s) => ({ key: signingKey(this.secretBox.open(s.encrypted)), expiresAt: s.expireTime?.getTime() ?? Infinity })),
        refusal: !verdict.ok ? verdict.reason : tokenVerdict && !tokenVerdict.ok ? `oauth token: ${tokenVerdict.reason.replace(/^url /, 'token url ')}` : undefined,
        auth: credentials ? prepareAuth(route, credentials) : undefined,
      };
      this.prepared.set(route, prepared);
    }
    return prepared;
  }
}

function prepareAuth(route: Route, credentials: EndpointCredentials): PreparedAuth {
  switch (credentials.kind) {
    case 'basic':
      return { kind: 'basic', authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` };
    case 'oauth':
      return { kind: 'oauth', credentials };
    case 'mtls':
      // One agent per webhook and route version: a new certificate (or CA bundle) never reuses the old
      // one's connections, and a webhook's own CAs are trusted on its connections only.
      return { kind: 'mtls', identity: { key: `${route.webhookId}:${route.version}`, certificate: { cert: credentials.certificatePem, key: credentials.keyPem, ca: credentials.caPem } } };
  }
}

function withBearer(outbound: OutboundRequest, accessToken: string): OutboundRequest {
  return { ...outbound, headers: { ...outbound.headers, authorization: `Bearer ${accessToken}` } };
}

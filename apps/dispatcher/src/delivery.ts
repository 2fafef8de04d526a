// One attempt of one delivery, as stages: build the signed request, send it, decide what comes next.
// The decision is made by the pure retry policy; the consumer only applies it.
import type { KeyObject } from 'node:crypto';
import type { DeliveryTask, Route } from '@webhooks/contracts';
import { checkEndpointUrl, nextAttempt, signatureHeaders, signingKey, type RetryPolicy, type SecretBox, type UrlPolicy } from '@webhooks/domain';
import type { HttpSender, OutboundRequest, SendResult } from './http-sender.js';

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
  /** Undefined when the URL passes the policy; otherwise why not. */
  readonly refusal: string | undefined;
}

export class Deliverer {
  // Keyed by the Route object: the routing table replaces it on every change, so stale entries go with it.
  private readonly prepared = new WeakMap<Route, PreparedRoute>();

  constructor(
    private readonly sender: HttpSender,
    private readonly secretBox: SecretBox,
    private readonly urlPolicy: UrlPolicy,
    private readonly retryPolicy: RetryPolicy,
  ) {}

  async attempt(task: DeliveryTask, route: Route, attempt: number, firstAttemptAt: number): Promise<AttemptResult> {
    const startedAt = new Date();
    const prepared = this.prepareRoute(route);
    const { outbound, loggedHeaders } = this.prepare(task, route, prepared, startedAt);
    const result: SendResult = prepared.refusal === undefined ? await this.sender.send(outbound) : { kind: 'failed', statusCode: 0, reason: prepared.refusal, durationMs: 0, excerpt: '' };
    return { startedAt, result, loggedHeaders, decision: this.decide(result, attempt, firstAttemptAt) };
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
    for (const name of Object.keys(route.headers)) loggedHeaders[name] = '[redacted]';
    return { outbound: { url: route.url, headers, body: task.body }, loggedHeaders };
  }

  private prepareRoute(route: Route): PreparedRoute {
    let prepared = this.prepared.get(route);
    if (!prepared) {
      const verdict = checkEndpointUrl(route.url, this.urlPolicy);
      prepared = {
        secrets: route.secrets.map((s) => ({ key: signingKey(this.secretBox.open(s.encrypted)), expiresAt: s.expireTime?.getTime() ?? Infinity })),
        refusal: verdict.ok ? undefined : verdict.reason,
      };
      this.prepared.set(route, prepared);
    }
    return prepared;
  }
}

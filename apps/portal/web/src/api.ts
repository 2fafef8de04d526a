// Calls the portal's own API with the session's token in a header (never a cookie), and a W3C
// traceparent, which the server records as a link on its own trace of the request.

/**
 * What the service answers in place of each custom header's value (write-only, like credentials); sent
 * back unchanged, it keeps the stored value (libs/domain headers.ts).
 */
export const redactedHeaderValue = '[redacted]';

export interface Credentials {
  readonly token: string;
  /** Set for operators, who pick the workspace. */
  readonly workspaceId?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const hex = (bytes: number) => Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');

export async function call<T>(credentials: Credentials, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${credentials.token}`, traceparent: `00-${hex(16)}-${hex(8)}-01` };
  if (credentials.workspaceId) headers['x-portal-workspace'] = credentials.workspaceId;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  const answer = (await response.json().catch(() => ({}))) as { error?: { code: string; message: string } };
  if (!response.ok) throw new ApiError(response.status, answer.error?.code ?? 'UNKNOWN', answer.error?.message ?? response.statusText);
  return answer as T;
}

/** What the API answers, as proto JSON. */
export interface Workspace { id: string; name: string; plan: string }
export interface WebhookDisabled { reason: string; detail: string; disableTime?: string; lastError: string }
export interface Webhook {
  id: string; name: string; url: string; eventTypes: string[]; headers: Record<string, string>; status: string; disabled?: WebhookDisabled; maskedSecret: string; version: number;
  /** Deliveries per second; absent: no limit. */
  rateLimit?: number;
  /** Which endpoint authentication is set; its credentials are write-only and never come back. */
  authKind: AuthKind;
}
export type AuthKind = 'none' | 'basic' | 'oauth' | 'mtls';
export interface EventType { name: string; description: string; exampleBodyJson: string }
export interface Attempt { number: number; startTime?: string; durationMs: number; statusCode: number; failureReason: string; responseExcerpt: string; requestHeaders: Record<string, string> }
export interface Delivery {
  id: string; webhookId: string; eventId: string; eventType: string; status: string; dropReason: string; attemptCount: number; createTime?: string; updateTime?: string; retryOfDeliveryId: string; attempts: Attempt[]; body?: string;
  /** While retrying: when the next attempt is due, and the latest an attempt may start before the delivery is dropped. */
  nextAttemptTime?: string; giveUpTime?: string;
}
/** A webhook's health from the log (absent for a webhook without deliveries in the last 48 hours). */
export interface WebhookHealth {
  webhookId: string; lastFailure?: { startTime?: string; statusCode: number; failureReason: string };
  attempts24h: number; succeeded24h: number; retryingCount: number; nextAttemptTime?: string;
}
/** One change of one webhook (ListWebhookActivity), with enums as lower-case names. */
export interface ActivityRecord {
  cursor: string; workspaceId: string; webhookId: string; webhookName: string;
  kind: 'created' | 'edited' | 'secret_rotated' | 'auth_changed' | 'deactivated' | 'activated' | 'disabled_by_breaker' | 'disabled_by_plan' | 'deliveries_recovered' | 'deleted';
  actor: { kind: 'api_token' | 'portal_session' | 'operator' | 'system'; name: string; tokenName: string };
  time?: string; fields: string[]; failureCount: number; windowSeconds: number; lastError: string; plan: string; recoveredCount: number; recoveredSince?: string; authKind: AuthKind;
}
export interface HourlyAttempts { hourStart: string; succeeded: number; failed: number; p50Ms: number; p95Ms: number }
export interface Breaker { failureCount: number; threshold: number; windowSeconds: number }
export interface Session { workspace: Workspace; operator: boolean; expiresAt: string | null }

export const minutesOf = (seconds: number) => Math.round(seconds / 60);

// The workspace failure breaker: more than `threshold` failed attempts within any `windowMs`, counted
// across all webhooks of a workspace, trips it, and the webhooks that failed within the window are
// disabled. Pure: the dispatcher keeps the state in a KV bucket and updates it with compare-and-set.

export interface BreakerPolicy {
  /** Failures tolerated within the window; one more trips the breaker. The product's rule: 30. */
  readonly threshold: number;
  /** The product's rule: 30 minutes. */
  readonly windowMs: number;
}

export const defaultBreakerPolicy: BreakerPolicy = { threshold: 30, windowMs: 30 * 60_000 };

export interface Failure {
  readonly webhookId: string;
  readonly at: number;
  readonly reason: string;
}

/** The failures of one workspace still inside the window, oldest first. */
export interface FailureWindow {
  readonly failures: readonly Failure[];
}

export interface Trip {
  /** Failures in the window when it tripped (threshold + 1 or more). */
  readonly total: number;
  /** Each webhook that failed within the window, with its failures, oldest first. */
  readonly webhooks: ReadonlyMap<string, readonly Failure[]>;
}

export const emptyWindow: FailureWindow = { failures: [] };

function prune(window: FailureWindow, now: number, policy: BreakerPolicy): Failure[] {
  return window.failures.filter((f) => f.at > now - policy.windowMs);
}

/**
 * Adds one failed attempt. When the count within the window exceeds the threshold, the breaker trips:
 * the answer names every webhook that failed within the window, and the window starts empty again
 * (those webhooks are being disabled; their old failures must not count twice).
 */
export function recordFailure(window: FailureWindow, failure: Failure, policy: BreakerPolicy = defaultBreakerPolicy): { window: FailureWindow; trip?: Trip } {
  const failures = [...prune(window, failure.at, policy), failure].sort((a, b) => a.at - b.at);
  if (failures.length <= policy.threshold) return { window: { failures } };
  const webhooks = new Map<string, Failure[]>();
  for (const f of failures) webhooks.set(f.webhookId, [...(webhooks.get(f.webhookId) ?? []), f]);
  return { window: emptyWindow, trip: { total: failures.length, webhooks } };
}

/** Removes a webhook's failures, e.g. when it is activated again, so old failures do not trip it anew. */
export function forgetWebhook(window: FailureWindow, webhookId: string): FailureWindow {
  return { failures: window.failures.filter((f) => f.webhookId !== webhookId) };
}

/**
 * A workspace's breaker as stored in the KV bucket: its window, and a trip that was decided but may not
 * have been published yet (whoever updates the state next publishes it; publishing is idempotent).
 */
export interface BreakerState {
  readonly failures: readonly Failure[];
  /** base64 of the encoded BreakerTripped message. */
  readonly pendingTrip?: string;
  /** When the pending trip was decided (ms since the epoch); absent in states written before it existed. */
  readonly pendingSince?: number;
}

/** Room left for publishing a pending trip before the trip stream's duplicate window closes on it. */
export const pendingTripPublishMarginMs = 30_000;

/**
 * Whether a pending trip is too old to publish. A trip is published with its id as the message id, so a
 * repeat is recognised only within the trip stream's duplicate window. A trip left pending longer (its
 * publisher crashed and the workspace saw no failure since) may already have been published, and the
 * user may have re-activated its webhooks since: publishing it would disable them again and send a
 * second email. Such a trip is dropped instead. Its failures are not counted again either.
 */
export function pendingTripIsStale(decidedAt: number, now: number, duplicateWindowMs: number, marginMs = pendingTripPublishMarginMs): boolean {
  return now - decidedAt >= duplicateWindowMs - marginMs;
}

export function encodeBreakerState(state: BreakerState): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(state));
}

export function decodeBreakerState(bytes: Uint8Array | undefined): BreakerState {
  if (!bytes || bytes.length === 0) return { failures: [] };
  return JSON.parse(new TextDecoder().decode(bytes)) as BreakerState;
}

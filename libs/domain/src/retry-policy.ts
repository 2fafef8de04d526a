// When a failed delivery is tried again, or given up. Pure: the dispatcher only applies the answer.

export interface RetryPolicy {
  /** Wait after the 1st, 2nd, 3rd... failed attempt. The product's rule: 30 s, 60 s, 90 s. */
  readonly delaysMs: readonly number[];
  /** No attempt may start later than this after the first attempt (the product's 3 minutes). */
  readonly giveUpAfterMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { delaysMs: [30_000, 60_000, 90_000], giveUpAfterMs: 180_000 };

export type RetryDecision =
  | { readonly kind: 'retry'; readonly delayMs: number; readonly retryAt: number }
  | { readonly kind: 'drop'; readonly reason: string };

/**
 * After failed attempt number `attempt` (1-based), decide the next step. An attempt that would start more
 * than `giveUpAfterMs` after the first one is not made: the event is dropped. A clock that reads earlier
 * than `firstAttemptAt` (skew between replicas) counts as no time elapsed, never as extra time.
 */
export function nextAttempt(attempt: number, firstAttemptAt: number, now: number, policy: RetryPolicy = defaultRetryPolicy): RetryDecision {
  const delayMs = policy.delaysMs[attempt - 1];
  if (delayMs === undefined) return { kind: 'drop', reason: `attempts exhausted after ${attempt} attempts` };
  const retryAt = Math.max(now, firstAttemptAt) + delayMs;
  if (retryAt - firstAttemptAt > policy.giveUpAfterMs) {
    return { kind: 'drop', reason: `attempts exhausted: a next attempt would start more than ${policy.giveUpAfterMs / 1000} s after the first` };
  }
  return { kind: 'retry', delayMs, retryAt };
}

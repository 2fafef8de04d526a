// When a failed delivery is tried again, or given up. Pure: the dispatcher only applies the answer.

export interface RetryPolicy {
  /** Wait before the 2nd, 3rd, 4th... attempt. The product's rule: 30 s, 60 s, 90 s. */
  readonly delaysMs: readonly number[];
  /** No attempt may start later than this after the first attempt (the product's 3 minutes). */
  readonly giveUpAfterMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { delaysMs: [30_000, 60_000, 90_000], giveUpAfterMs: 180_000 };

export type RetryDecision =
  | { readonly kind: 'retry'; readonly delayMs: number; readonly retryAt: number }
  | { readonly kind: 'drop'; readonly reason: string };

/**
 * After failed attempt number `attempt` (1-based), decide the next step.
 *
 * The retries form a timetable counted from the first attempt: with 30/60/90 s they are planned at +30 s,
 * +90 s and +180 s. Counting each delay from the moment the previous attempt failed instead would let
 * the time attempts take (up to the 5 s deadline each) push the last retry past the 3-minute limit, so
 * the product's third retry would never happen. An attempt planned later than `giveUpAfterMs` after the
 * first one is not made: the event is dropped. A retry is never planned in the past, and a clock that
 * reads earlier than `firstAttemptAt` (skew between replicas) changes nothing.
 */
export function nextAttempt(attempt: number, firstAttemptAt: number, now: number, policy: RetryPolicy = defaultRetryPolicy): RetryDecision {
  if (attempt < 1 || attempt > policy.delaysMs.length) return { kind: 'drop', reason: `attempts exhausted after ${attempt} attempts` };
  const plannedOffset = policy.delaysMs.slice(0, attempt).reduce((sum, delay) => sum + delay, 0);
  const retryAt = Math.max(now, firstAttemptAt + plannedOffset);
  if (retryAt - firstAttemptAt > policy.giveUpAfterMs) {
    return { kind: 'drop', reason: `attempts exhausted: a next attempt would start more than ${policy.giveUpAfterMs / 1000} s after the first` };
  }
  return { kind: 'retry', delayMs: Math.max(0, retryAt - now), retryAt };
}

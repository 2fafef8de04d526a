// Paces each webhook to its rate limit (deliveries per second). A webhook has one task in flight, so the
// pacing is a wait before an attempt starts. The rules:
// - an attempt of a webhook starts at least 1000 / rate ms after the previous attempt of that webhook
//   ENDED. Counting from the end (not the start) is what makes the gap hold where the endpoint sees it:
//   the previous request reached the endpoint before its attempt ended, whatever the connection's
//   latency was. So the endpoint never sees more than the limit; a slow endpoint sees fewer;
// - a retry is an attempt and is paced like any other;
// - the wait is not an attempt: it makes no attempt record, takes no attempt number, counts nothing
//   towards the breaker, and a new task's first-attempt time (the 3-minute clock) is read after it;
// - the limit in force is the route's at the moment the task is handled; 0 means no limit;
// - the memory is this replica's: when a webhook's shard moves to another replica, the new owner knows no
//   previous attempt, so the first attempt after the hand-over may come early.
//
// Eviction (lastEnds, keyed by webhook): an entry older than the longest possible interval (1 s, at the
// minimum rate of 1/s) can no longer delay anything and is removed by a sweep, run at most once per
// second; a webhook without a limit has no entry; at most `capacity` entries are kept, the least
// recently written going first.
import { rateLimitRange } from '@webhooks/domain';

/** The longest interval any allowed rate asks for. */
const longestIntervalMs = 1_000 / rateLimitRange.min;
export const ratePacerCapacity = 100_000;

/** How long to wait before starting an attempt, given when the previous one ended. Pure. */
export function paceDelay(previousEndAt: number | undefined, ratePerSecond: number, now: number): number {
  if (ratePerSecond <= 0 || previousEndAt === undefined) return 0;
  return Math.max(0, previousEndAt + 1_000 / ratePerSecond - now);
}

export class RatePacer {
  private readonly lastEnds = new Map<string, number>();
  private nextSweep = 0;

  constructor(private readonly capacity = ratePacerCapacity) {}

  /** The wait before the webhook's next attempt may start. */
  delay(webhookId: string, ratePerSecond: number, now: number): number {
    this.sweep(now);
    if (ratePerSecond <= 0) {
      this.lastEnds.delete(webhookId);
      return 0;
    }
    return paceDelay(this.lastEnds.get(webhookId), ratePerSecond, now);
  }

  /** An attempt of the webhook ended (whatever its outcome); nothing is kept without a limit. */
  ended(webhookId: string, ratePerSecond: number, endedAt: number): void {
    // Re-inserted so the Map's order stays least recently written first.
    this.lastEnds.delete(webhookId);
    if (ratePerSecond <= 0) return;
    this.lastEnds.set(webhookId, endedAt);
    while (this.lastEnds.size > this.capacity) this.lastEnds.delete(this.lastEnds.keys().next().value!);
  }

  get size(): number {
    return this.lastEnds.size;
  }

  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + 1_000;
    for (const [webhookId, endedAt] of this.lastEnds) {
      if (endedAt > now - longestIntervalMs) break; // the rest were written later
      this.lastEnds.delete(webhookId);
    }
  }
}

/**
 * Waits `ms`, telling the server every `keepAliveEveryMs` that the task is still being worked on, so a
 * paced task is never handed to another replica while it waits.
 */
export async function waitKeepingAlive(ms: number, keepAlive: () => void, keepAliveEveryMs: number): Promise<void> {
  const until = Date.now() + ms;
  for (let left = ms; left > 0; left = until - Date.now()) {
    keepAlive();
    await new Promise((resolve) => setTimeout(resolve, Math.min(left, keepAliveEveryMs)));
  }
}

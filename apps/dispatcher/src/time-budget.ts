// The time one attempt may hold its task, checked once at start-up against DELIVERY_ACK_WAIT. From the
// moment the dispatcher last told the server it is working on a task (on receipt, then right before the
// HTTP request), the request may take ATTEMPT_TIMEOUT and the first try to store its attempt record the
// record publish timeout; after that every retry of the record calls working() again. The breaker update
// is not on this path (it is queued). If the sum plus a margin for the network and the event loop does
// not fit inside the ack wait, the server would hand the task to another replica while the first attempt
// still runs, and the endpoint would get the event twice: such a configuration is refused.
//
// The same holds for the shard lease (ownership.ts rule 3): a request started under a lease must end
// before the lease can expire on the server. A renewal that started at s leaves the lease on the server
// until at least s + DISPATCH_LEASE_TTL, so requests may start until s + TTL - ATTEMPT_TIMEOUT - margin
// (the lease's trust). Renewed every third of the TTL, with half a heartbeat to answer, the trust must
// reach past the next renewal's answer: ATTEMPT_TIMEOUT + margin <= TTL / 2, or a healthy replica would
// pause between renewals. The rate limit's wait is not in it: the lease is asked again after the wait,
// right before the request (dispatch.ts).
import { ConfigError } from '@webhooks/config';

/** Network round trips, the event loop under load, clocks: what the sum must leave free. */
export const ackWaitMarginMs = 1_000;
/** The record publish timeout is never longer than this, however long the ack wait. */
export const maxRecordPublishTimeoutMs = 5_000;
/** Below this a record publish would time out on an ordinary busy server: refused. */
export const minRecordPublishTimeoutMs = 500;

export interface AttemptBudget {
  /** How long one try to store an attempt record (or a breaker trip) may wait for the stream's ack. */
  readonly recordPublishTimeoutMs: number;
  /**
   * What the ack wait leaves beyond the attempt, its first record try and the margin: a task handed out
   * less than this long ago needs no working() before its request (the ack wait from its delivery still
   * covers both), which saves a message to the server and a turn of the event loop per delivery.
   */
  readonly freshForMs: number;
}

/**
 * The record publish timeout that fits: what ATTEMPT_TIMEOUT and the margin leave of the ack wait, at
 * most 5 s. Throws a ConfigError naming the variables when not even the minimum fits.
 */
export function attemptBudget(ackWaitMs: number, attemptTimeoutMs: number): AttemptBudget {
  const left = ackWaitMs - attemptTimeoutMs - ackWaitMarginMs;
  if (left < minRecordPublishTimeoutMs) {
    throw new ConfigError([
      `DELIVERY_ACK_WAIT (${ackWaitMs} ms) must be at least ATTEMPT_TIMEOUT (${attemptTimeoutMs} ms) + ${minRecordPublishTimeoutMs} ms to store the attempt record + ${ackWaitMarginMs} ms margin = ${attemptTimeoutMs + minRecordPublishTimeoutMs + ackWaitMarginMs} ms; raise DELIVERY_ACK_WAIT or lower ATTEMPT_TIMEOUT`,
    ]);
  }
  const recordPublishTimeoutMs = Math.min(maxRecordPublishTimeoutMs, left);
  return { recordPublishTimeoutMs, freshForMs: left - recordPublishTimeoutMs };
}

/** What the lease keeps free after the last request it lets start can end: the socket's close reaching the endpoint, the event loop. */
export function leaseMarginMs(leaseTtlMs: number): number {
  return Math.max(100, Math.floor(leaseTtlMs / 20));
}

/**
 * How long after a renewal's start requests may start under the lease: TTL - ATTEMPT_TIMEOUT - margin.
 * Throws a ConfigError naming the variables when it does not reach half the TTL.
 */
export function leaseTrustMs(leaseTtlMs: number, attemptTimeoutMs: number): number {
  const margin = leaseMarginMs(leaseTtlMs);
  if (attemptTimeoutMs + margin > leaseTtlMs / 2) {
    const neededS = Math.ceil(Math.max(2 * (attemptTimeoutMs + 100), attemptTimeoutMs / 0.45) / 1000);
    throw new ConfigError([
      `DISPATCH_LEASE_TTL (${leaseTtlMs} ms) must be at least twice ATTEMPT_TIMEOUT (${attemptTimeoutMs} ms) plus its margin (${margin} ms): a request started under a lease must end before the lease can expire, with room for the renewals; raise DISPATCH_LEASE_TTL to at least ${neededS}s or lower ATTEMPT_TIMEOUT`,
    ]);
  }
  return leaseTtlMs - attemptTimeoutMs - margin;
}

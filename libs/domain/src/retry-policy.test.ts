import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultRetryPolicy, nextAttempt } from './retry-policy.js';

const t0 = 1_700_000_000_000;
const s = 1000;

describe('nextAttempt with the product schedule (30/60/90 s, 3 minutes)', () => {
  it('retries after 30 s, then 60 s, then 90 s when attempts fail fast', () => {
    assert.deepEqual(nextAttempt(1, t0, t0, defaultRetryPolicy), { kind: 'retry', delayMs: 30 * s, retryAt: t0 + 30 * s });
    assert.deepEqual(nextAttempt(2, t0, t0 + 30 * s, defaultRetryPolicy), { kind: 'retry', delayMs: 60 * s, retryAt: t0 + 90 * s });
    // The 4th attempt lands exactly at 3 minutes: still allowed.
    assert.deepEqual(nextAttempt(3, t0, t0 + 90 * s, defaultRetryPolicy), { kind: 'retry', delayMs: 90 * s, retryAt: t0 + 180 * s });
  });

  it('drops after the 4th attempt: the schedule has no 4th delay', () => {
    const decision = nextAttempt(4, t0, t0 + 180 * s, defaultRetryPolicy);
    assert.equal(decision.kind, 'drop');
    assert.match((decision as { reason: string }).reason, /attempts exhausted after 4 attempts/);
  });

  it('drops when the next attempt would start even 1 ms after the 3-minute limit', () => {
    const decision = nextAttempt(3, t0, t0 + 90 * s + 1, defaultRetryPolicy);
    assert.equal(decision.kind, 'drop');
    assert.match((decision as { reason: string }).reason, /more than 180 s after the first/);
  });

  it('drops the 3rd retry when timeouts made the earlier attempts late', () => {
    // Attempts that each took the full 5 s deadline: 1st at 0, 2nd at 35 s, 3rd at 100 s, fails at 105 s.
    assert.equal(nextAttempt(1, t0, t0 + 5 * s).kind, 'retry');
    assert.equal(nextAttempt(2, t0, t0 + 40 * s).kind, 'retry');
    assert.equal(nextAttempt(3, t0, t0 + 105 * s).kind, 'drop');
  });

  it('treats a clock behind the first attempt (skew between replicas) as no time elapsed', () => {
    assert.deepEqual(nextAttempt(1, t0, t0 - 10 * s), { kind: 'retry', delayMs: 30 * s, retryAt: t0 + 30 * s });
  });

  it('follows a scaled-down policy', () => {
    const policy = { delaysMs: [30, 60, 90], giveUpAfterMs: 180 };
    assert.deepEqual(nextAttempt(2, 0, 30, policy), { kind: 'retry', delayMs: 60, retryAt: 90 });
    assert.equal(nextAttempt(3, 0, 91, policy).kind, 'drop');
  });
});

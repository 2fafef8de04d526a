import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultRetryPolicy, nextAttempt } from './retry-policy.js';

const t0 = 1_700_000_000_000;
const s = 1000;

describe('nextAttempt with the product schedule (30/60/90 s, 3 minutes)', () => {
  it('plans the retries at +30 s, +90 s and +180 s from the first attempt when attempts fail at once', () => {
    assert.deepEqual(nextAttempt(1, t0, t0, defaultRetryPolicy), { kind: 'retry', delayMs: 30 * s, retryAt: t0 + 30 * s });
    assert.deepEqual(nextAttempt(2, t0, t0 + 30 * s, defaultRetryPolicy), { kind: 'retry', delayMs: 60 * s, retryAt: t0 + 90 * s });
    // The 4th attempt lands exactly at the 3-minute limit: still made.
    assert.deepEqual(nextAttempt(3, t0, t0 + 90 * s, defaultRetryPolicy), { kind: 'retry', delayMs: 90 * s, retryAt: t0 + 180 * s });
  });

  it('keeps the timetable when every attempt runs into the 5 s deadline', () => {
    assert.deepEqual(nextAttempt(1, t0, t0 + 5 * s), { kind: 'retry', delayMs: 25 * s, retryAt: t0 + 30 * s });
    assert.deepEqual(nextAttempt(2, t0, t0 + 35 * s), { kind: 'retry', delayMs: 55 * s, retryAt: t0 + 90 * s });
    assert.deepEqual(nextAttempt(3, t0, t0 + 95 * s), { kind: 'retry', delayMs: 85 * s, retryAt: t0 + 180 * s });
  });

  it('drops after the 4th attempt: the schedule has no 4th delay', () => {
    const decision = nextAttempt(4, t0, t0 + 180 * s, defaultRetryPolicy);
    assert.equal(decision.kind, 'drop');
    assert.match((decision as { reason: string }).reason, /attempts exhausted after 4 attempts/);
  });

  it('drops when the planned attempt falls 1 ms after the limit, and retries when it falls exactly on it', () => {
    const tight = { delaysMs: [30 * s, 60 * s, 90 * s], giveUpAfterMs: 180 * s - 1 };
    const dropped = nextAttempt(3, t0, t0 + 90 * s, tight);
    assert.equal(dropped.kind, 'drop');
    assert.match((dropped as { reason: string }).reason, /more than 179.999 s after the first/);
    assert.equal(nextAttempt(3, t0, t0 + 90 * s, { ...tight, giveUpAfterMs: 180 * s }).kind, 'retry');
  });

  it('drops when the attempt itself came so late that any retry would pass the limit', () => {
    // E.g. the dispatcher was down: the 3rd attempt only ran at +179 s and failed at +181 s.
    assert.equal(nextAttempt(3, t0, t0 + 181 * s).kind, 'drop');
    // A late 2nd attempt is retried at once rather than in the past.
    assert.deepEqual(nextAttempt(2, t0, t0 + 100 * s), { kind: 'retry', delayMs: 0, retryAt: t0 + 100 * s });
  });

  it('ignores a clock that reads earlier than the first attempt (skew between replicas)', () => {
    assert.deepEqual(nextAttempt(1, t0, t0 - 10 * s), { kind: 'retry', delayMs: 40 * s, retryAt: t0 + 30 * s });
  });

  it('follows a scaled-down policy', () => {
    const policy = { delaysMs: [30, 60, 90], giveUpAfterMs: 180 };
    assert.deepEqual(nextAttempt(2, 0, 31, policy), { kind: 'retry', delayMs: 59, retryAt: 90 });
    assert.equal(nextAttempt(3, 0, 181, policy).kind, 'drop');
    assert.equal(nextAttempt(0, 0, 0, policy).kind, 'drop');
  });
});

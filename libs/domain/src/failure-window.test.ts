import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultBreakerPolicy, emptyWindow, forgetWebhook, pendingTripIsStale, recordFailure, type FailureWindow } from './failure-window.js';

const minute = 60_000;
const t0 = 1_700_000_000_000;

function fail(window: FailureWindow, n: number, webhookId: string, start: number, step = 1000) {
  let current = window;
  let trip;
  for (let i = 0; i < n; i++) {
    const result = recordFailure(current, { webhookId, at: start + i * step, reason: `status 500 (#${i})` });
    current = result.window;
    trip ??= result.trip;
  }
  return { window: current, trip };
}

describe('the workspace failure breaker (30 failures in 30 minutes)', () => {
  it('does not trip on 30 failures, and trips on the 31st', () => {
    const thirty = fail(emptyWindow, 30, 'wh_a', t0);
    assert.equal(thirty.trip, undefined);
    assert.equal(thirty.window.failures.length, 30);
    const { trip, window } = recordFailure(thirty.window, { webhookId: 'wh_a', at: t0 + 31_000, reason: 'timeout' });
    assert.equal(trip?.total, 31);
    assert.deepEqual([...trip!.webhooks.keys()], ['wh_a']);
    assert.equal(trip!.webhooks.get('wh_a')!.at(-1)!.reason, 'timeout');
    assert.deepEqual(window, emptyWindow);
  });

  it('counts across the webhooks of the workspace and names each one that failed', () => {
    const a = fail(emptyWindow, 20, 'wh_a', t0);
    const b = fail(a.window, 10, 'wh_b', t0 + 30_000);
    assert.equal(b.trip, undefined);
    const { trip } = recordFailure(b.window, { webhookId: 'wh_c', at: t0 + 60_000, reason: 'connection refused' });
    assert.deepEqual([...trip!.webhooks.entries()].map(([id, f]) => [id, f.length]), [['wh_a', 20], ['wh_b', 10], ['wh_c', 1]]);
  });

  it('lets old failures slide out of the window', () => {
    const old = fail(emptyWindow, 30, 'wh_a', t0);
    // 30 minutes after the first failure it no longer counts: 30 in the window, no trip.
    const later = recordFailure(old.window, { webhookId: 'wh_a', at: t0 + 30 * minute, reason: 'x' });
    assert.equal(later.trip, undefined);
    assert.equal(later.window.failures.length, 30);
    // Much later, everything old is gone.
    const muchLater = recordFailure(later.window, { webhookId: 'wh_a', at: t0 + 120 * minute, reason: 'x' });
    assert.equal(muchLater.window.failures.length, 1);
  });

  it('forgets a webhook that is activated again', () => {
    const mixed = fail(fail(emptyWindow, 25, 'wh_a', t0).window, 5, 'wh_b', t0);
    const forgotten = forgetWebhook(mixed.window, 'wh_a');
    assert.equal(forgotten.failures.length, 5);
    assert.equal(fail(forgotten, 25, 'wh_b', t0 + minute).trip, undefined);
  });

  it('follows a scaled policy', () => {
    const policy = { threshold: 3, windowMs: 1000 };
    let window = emptyWindow;
    for (let i = 0; i < 3; i++) window = recordFailure(window, { webhookId: 'w', at: i * 100, reason: 'r' }, policy).window;
    assert.ok(recordFailure(window, { webhookId: 'w', at: 400, reason: 'r' }, policy).trip);
    assert.equal(recordFailure(window, { webhookId: 'w', at: 1001, reason: 'r' }, policy).trip, undefined);
    assert.equal(defaultBreakerPolicy.threshold, 30);
  });
});

describe('a pending trip', () => {
  const window = 10 * minute;

  it('is published while the trip stream still recognises it as a repeat', () => {
    assert.equal(pendingTripIsStale(t0, t0, window), false);
    assert.equal(pendingTripIsStale(t0, t0 + 9 * minute, window), false);
    assert.equal(pendingTripIsStale(t0, t0 + window - 30_001, window), false);
  });

  it('is stale from the duplicate window minus the publish margin on, e.g. hours later', () => {
    assert.equal(pendingTripIsStale(t0, t0 + window - 30_000, window), true);
    assert.equal(pendingTripIsStale(t0, t0 + 3 * 60 * minute, window), true);
    assert.equal(pendingTripIsStale(t0, t0 + window, window, 0), true);
    assert.equal(pendingTripIsStale(t0, t0 + window - 1, window, 0), false);
  });
});

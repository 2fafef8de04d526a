import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { paceDelay, RatePacer, waitKeepingAlive } from './rate-pacing.js';

describe('paceDelay', () => {
  it('waits until 1000 / rate ms after the previous attempt ended', () => {
    assert.equal(paceDelay(undefined, 20, 1_000), 0);
    assert.equal(paceDelay(1_000, 20, 1_010), 40);
    assert.equal(paceDelay(1_000, 20, 1_050), 0);
    assert.equal(paceDelay(1_000, 20, 5_000), 0);
    assert.equal(paceDelay(1_000, 1, 1_000), 1_000);
  });

  it('never waits without a limit', () => {
    assert.equal(paceDelay(1_000, 0, 1_000), 0);
  });
});

describe('RatePacer', () => {
  it('spaces a webhook\'s attempts from the end of the previous one, per webhook', () => {
    const pacer = new RatePacer();
    assert.equal(pacer.delay('wh_a', 10, 0), 0);
    pacer.ended('wh_a', 10, 30);
    assert.equal(pacer.delay('wh_a', 10, 30), 100);
    assert.equal(pacer.delay('wh_a', 10, 100), 30);
    // Another webhook is not affected.
    assert.equal(pacer.delay('wh_b', 10, 100), 0);
  });

  it('applies a changed limit at once, and keeps nothing for a webhook without one', () => {
    const pacer = new RatePacer();
    pacer.ended('wh_a', 10, 0);
    assert.equal(pacer.delay('wh_a', 100, 0), 10);
    assert.equal(pacer.delay('wh_a', 0, 0), 0);
    assert.equal(pacer.size, 0);
    pacer.ended('wh_a', 0, 0);
    assert.equal(pacer.size, 0);
  });

  it('evicts entries older than the longest interval, and the oldest beyond its capacity', () => {
    const pacer = new RatePacer(2);
    pacer.ended('wh_a', 5, 0);
    pacer.ended('wh_b', 5, 0);
    pacer.ended('wh_c', 5, 0);
    assert.equal(pacer.size, 2);
    assert.equal(pacer.delay('wh_a', 5, 0), 0, 'wh_a was evicted first');
    // More than a second later every entry is stale: the next sweep removes them.
    pacer.delay('wh_d', 5, 5_000);
    assert.equal(pacer.size, 0);
  });
});

describe('waitKeepingAlive', () => {
  it('keeps the task alive when the wait starts and not at all without a wait', async () => {
    let calls = 0;
    await waitKeepingAlive(60, () => calls++, 20);
    assert.ok(calls >= 1, `${calls} keep-alives`);
    calls = 0;
    await waitKeepingAlive(0, () => calls++, 20);
    assert.equal(calls, 0);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '@webhooks/telemetry';
import { BreakerQueue, type FailureCounter } from './breaker-queue.js';

const logger = createLogger('breaker-queue-test');
const failure = (n: number) => ({ workspaceId: 'ws', webhookId: 'wh', at: n, reason: `status ${n}` });

describe('breaker queue', () => {
  it('applies failures in order in the background, and never waits for them', async () => {
    const applied: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const counter: FailureCounter = {
      async recordFailure(_ws, _wh, at) {
        await gate;
        applied.push(at);
      },
    };
    const queue = new BreakerQueue(counter, logger, 10);
    for (let n = 1; n <= 3; n++) assert.equal(queue.add(failure(n)), true);
    assert.deepEqual(applied, [], 'nothing applied yet: add() did not wait');
    release();
    await queue.idle();
    assert.deepEqual(applied, [1, 2, 3]);
  });

  it('drops what does not fit, and goes on after a failed update', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const applied: number[] = [];
    const counter: FailureCounter = {
      async recordFailure(_ws, _wh, at) {
        await gate;
        if (at === 1) throw new Error('KV unavailable');
        applied.push(at);
      },
    };
    const queue = new BreakerQueue(counter, logger, 2);
    // The drainer takes 1 at once; 2 and 3 wait; 4 does not fit.
    assert.deepEqual([1, 2, 3, 4].map((n) => queue.add(failure(n))), [true, true, true, false]);
    release();
    await queue.idle();
    assert.deepEqual(applied, [2, 3]);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AttemptMemory, EndedDeliveries } from './attempt-memory.js';

const retry = { kind: 'retry', delayMs: 10, retryAt: 10 } as const;

describe('attempt memory', () => {
  it('removes entries not touched within the maximum age', () => {
    const memory = new AttemptMemory(1_000, 100, 0);
    memory.remember('a', { attempt: 1, firstAttemptAt: 0, decision: retry }, 0);
    memory.remember('b', { attempt: 1, firstAttemptAt: 500, decision: retry }, 500);
    memory.remember('a', { attempt: 2, firstAttemptAt: 0, decision: retry }, 900); // touched again
    memory.remember('c', { attempt: 1, firstAttemptAt: 1_600, decision: retry }, 1_600);
    assert.equal(memory.get('b'), undefined, 'b was last touched 1.1 s ago');
    assert.equal(memory.get('a')?.attempt, 2);
    assert.equal(memory.size, 2);
  });

  it('keeps at most its capacity, dropping the least recently touched', () => {
    const memory = new AttemptMemory(60_000, 2, 0);
    memory.remember('a', { attempt: 1, firstAttemptAt: 0, decision: retry }, 0);
    memory.remember('b', { attempt: 1, firstAttemptAt: 0, decision: retry }, 1);
    memory.remember('a', { attempt: 2, firstAttemptAt: 0, decision: retry }, 2);
    memory.remember('c', { attempt: 1, firstAttemptAt: 0, decision: retry }, 3);
    assert.deepEqual(['a', 'b', 'c'].map((k) => memory.get(k)?.attempt), [2, undefined, 1]);
  });

  it('forgets a finished task at once', () => {
    const memory = new AttemptMemory(60_000);
    memory.remember('a', { attempt: 1, firstAttemptAt: 0, decision: { kind: 'succeeded' } });
    memory.forget('a');
    assert.equal(memory.size, 0);
  });
});

describe('ended deliveries', () => {
  it('knows how a delivery ended for at least the window, and forgets it within twice the window', () => {
    const ended = new EndedDeliveries(1_000, 100, 0);
    ended.add('d1', 1, 'succeeded', 100);
    ended.add('d2', 4, 'dropped', 900);
    ended.add('d3', 2, 'succeeded', 1_000); // the first generation ends: d1 and d2 move to the older one
    assert.deepEqual(ended.get('d1'), { attempt: 1, firstAttemptAt: 0, decision: { kind: 'succeeded' } });
    assert.deepEqual(ended.get('d2')?.decision.kind, 'dropped');
    assert.equal(ended.get('d2')?.attempt, 4);
    ended.add('d4', 1, 'succeeded', 2_000); // d1 and d2 were added at least 1 s ago and are dropped
    assert.equal(ended.get('d1'), undefined);
    assert.equal(ended.get('d2'), undefined);
    assert.equal(ended.get('d3')?.attempt, 2, 'd3 was added 1 s ago: still known');
    assert.equal(ended.get('unknown'), undefined);
  });

  it('starts a new generation early when the current one is full', () => {
    const ended = new EndedDeliveries(60_000, 2, 0);
    for (const id of ['a', 'b', 'c', 'd', 'e']) ended.add(id, 1, 'succeeded', 10);
    assert.deepEqual(
      ['a', 'b', 'c', 'd', 'e'].map((id) => ended.get(id) !== undefined),
      [false, false, true, true, true],
    );
    assert.ok(ended.size <= 4);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AttemptMemory } from './attempt-memory.js';

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

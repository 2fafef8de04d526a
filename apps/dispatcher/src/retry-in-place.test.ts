import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { retryInPlace } from './retry-in-place.js';

describe('retry in place', () => {
  it('repeats the write until it succeeds and keeps the task alive between tries', async () => {
    let tries = 0;
    let keptAlive = 0;
    const firstErrors: unknown[] = [];
    const result = await retryInPlace(
      async () => {
        if (++tries < 4) throw new Error(`no stream (${tries})`);
        return 'stored';
      },
      { keepAlive: () => keptAlive++, initialDelayMs: 1, maxDelayMs: 4, givenUp: () => false, onFirstFailure: (e) => firstErrors.push(e) },
    );
    assert.deepEqual(result, { value: 'stored', failedTries: 3 });
    assert.equal(keptAlive, 6);
    assert.equal(firstErrors.length, 1);
  });

  it('throws the last error once it is given up', async () => {
    let stopping = false;
    await assert.rejects(
      retryInPlace(
        async () => {
          stopping = true;
          throw new Error('still down');
        },
        { keepAlive: () => {}, initialDelayMs: 1, maxDelayMs: 1, givenUp: () => stopping },
      ),
      /still down/,
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '@webhooks/config';
import { attemptBudget, leaseTrustMs } from './time-budget.js';

describe('attempt time budget inside the ack wait', () => {
  it('gives the record publish what the attempt and the margin leave, at most 5 s', () => {
    assert.deepEqual(attemptBudget(30_000, 5_000), { recordPublishTimeoutMs: 5_000, freshForMs: 19_000 });
    assert.deepEqual(attemptBudget(4_000, 1_000), { recordPublishTimeoutMs: 2_000, freshForMs: 0 });
    assert.deepEqual(attemptBudget(2_000, 300), { recordPublishTimeoutMs: 700, freshForMs: 0 });
  });

  it('refuses an ack wait the attempt cannot fit in, naming both variables', () => {
    assert.throws(() => attemptBudget(3_000, 5_000), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /DELIVERY_ACK_WAIT \(3000 ms\) must be at least ATTEMPT_TIMEOUT \(5000 ms\) \+ 500 ms .* = 6500 ms/);
      return true;
    });
    assert.throws(() => attemptBudget(6_499, 5_000), ConfigError);
    assert.doesNotThrow(() => attemptBudget(6_500, 5_000));
  });
});

describe('the lease time a request must fit in', () => {
  it('lets requests start until the TTL minus the attempt and the margin, after a renewal\'s start', () => {
    assert.equal(leaseTrustMs(15_000, 5_000), 15_000 - 5_000 - 750);
    assert.equal(leaseTrustMs(6_000, 2_000), 6_000 - 2_000 - 300);
    assert.equal(leaseTrustMs(1_500, 500), 1_500 - 500 - 100);
  });

  it('refuses a TTL whose trust would not outlast a renewal, saying how long it must be', () => {
    assert.throws(() => leaseTrustMs(6_000, 5_000), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /DISPATCH_LEASE_TTL \(6000 ms\) must be at least twice ATTEMPT_TIMEOUT \(5000 ms\).*to at least 12s/);
      return true;
    });
    assert.throws(() => leaseTrustMs(11_000, 5_000), ConfigError);
    assert.doesNotThrow(() => leaseTrustMs(12_000, 5_000));
    assert.doesNotThrow(() => leaseTrustMs(3_000, 1_000));
  });
});

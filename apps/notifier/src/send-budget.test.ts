import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '@webhooks/config';
import { maxSendMs, sendBudget } from './send-budget.js';

const defaults = { ackWaitMs: 60_000, connectionTimeoutMs: 10_000, greetingTimeoutMs: 10_000, socketTimeoutMs: 30_000 };

describe('the time budget of one notice', () => {
  it('accepts the defaults and reports progress every third of the ack wait', () => {
    assert.deepEqual(sendBudget(defaults), { keepAliveMs: 20_000, worstCaseSendMs: 60_000 });
  });

  it("refuses nodemailer's own timeouts (2 min, 30 s, 10 min), naming the variables and the sum", () => {
    assert.throws(
      () => sendBudget({ ...defaults, connectionTimeoutMs: 120_000, greetingTimeoutMs: 30_000, socketTimeoutMs: 600_000 }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /SMTP_CONNECTION_TIMEOUT \(120000 ms\) \+ SMTP_GREETING_TIMEOUT \(30000 ms\) \+ SMTP_SOCKET_TIMEOUT \(600000 ms\) \+ 10000 ms for the workspace lookup = 760000 ms, more than the 300000 ms/);
        return true;
      },
    );
  });

  it('accepts a sum of exactly the limit and refuses one millisecond more', () => {
    const socketTimeoutMs = maxSendMs - 10_000 - 10_000 - 10_000;
    assert.equal(sendBudget({ ...defaults, socketTimeoutMs }).worstCaseSendMs, maxSendMs);
    assert.throws(() => sendBudget({ ...defaults, socketTimeoutMs: socketTimeoutMs + 1 }), ConfigError);
  });

  it('refuses a timeout of 0 (no timeout in nodemailer) and an ack wait too short to keep a send alive', () => {
    assert.throws(() => sendBudget({ ...defaults, socketTimeoutMs: 0 }), /SMTP_SOCKET_TIMEOUT must be above 0/);
    assert.throws(() => sendBudget({ ...defaults, ackWaitMs: 900 }), /NOTICE_ACK_WAIT \(900 ms\) must be at least 1000 ms/);
  });
});

// How failures become gRPC statuses: the caller's mistakes keep their message, a backing service out
// of reach is UNAVAILABLE (retryable), and anything else is INTERNAL without leaking details.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { DomainError } from '@webhooks/domain';
import { createLogger } from '@webhooks/telemetry';
import { toServiceError } from './errors.js';

const logger = createLogger('errors-test', 'silent');

describe('toServiceError', () => {
  it('keeps a domain error and its message', () => {
    const error = toServiceError(new DomainError('invalid-argument', 'url: must be https'), logger, 'CreateWebhook');
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.equal(error.details, 'url: must be https');
  });

  for (const [what, failure] of [
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    ['PostgreSQL shutting down (57P01)', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })],
    ['a connection exception (08006)', Object.assign(new Error('connection failure'), { code: '08006' })],
    ['a closed connection', new Error('Connection terminated unexpectedly')],
    ['an ORM wrapper around one', Object.assign(new Error('driver error'), { name: 'ConnectionException', cause: new Error('x') })],
    ['a wrapped refused connection', new Error('query failed', { cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) })],
  ] as const) {
    it(`answers ${what} with UNAVAILABLE`, () => {
      const error = toServiceError(failure, logger, 'ListWebhooks');
      assert.equal(error.code, status.UNAVAILABLE);
      assert.match(error.details, /unavailable; retry/);
    });
  }

  it('answers anything else with INTERNAL and no details', () => {
    const error = toServiceError(Object.assign(new Error('duplicate key value violates unique constraint "webhooks_pkey"'), { code: '23505' }), logger, 'CreateWebhook');
    assert.equal(error.code, status.INTERNAL);
    assert.doesNotMatch(error.details, /webhooks_pkey/);
  });
});

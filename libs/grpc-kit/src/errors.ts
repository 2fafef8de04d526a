// The one mapping from domain errors to gRPC status codes.
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { DomainError, type ErrorKind } from '@webhooks/domain';
import type { Logger } from '@webhooks/telemetry';

const codes: Record<ErrorKind, status> = {
  'invalid-argument': status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  'already-exists': status.ALREADY_EXISTS,
  'failed-precondition': status.FAILED_PRECONDITION,
  aborted: status.ABORTED,
  'permission-denied': status.PERMISSION_DENIED,
  unauthenticated: status.UNAUTHENTICATED,
  'resource-exhausted': status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
};

const statusMarker = Symbol('grpc status');

/** An error that already is a gRPC status (e.g. UNIMPLEMENTED); passed through unchanged. */
export function serviceError(code: status, message: string): ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new Metadata(), [statusMarker]: true });
}

// Connection-level failures of a backing service (PostgreSQL, NATS): the network errors, PostgreSQL's
// connection-exception class 08 and its shutdown codes 57P01..57P03, and the ORM's wrapper for them.
const connectionCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', '57P01', '57P02', '57P03']);

function isConnectionFailure(error: unknown): boolean {
  for (let e = error as { name?: string; code?: unknown; message?: string; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    const code = typeof e.code === 'string' ? e.code : '';
    if (connectionCodes.has(code) || /^08[0-9A-Z]{3}$/.test(code) || e.name === 'ConnectionException') return true;
    if (/Connection terminated|connect ECONNREFUSED|CONNECTION_CLOSED/.test(e.message ?? '')) return true;
  }
  return false;
}

/**
 * A domain error keeps its message; a backing service out of reach is UNAVAILABLE (callers retry it);
 * anything else is logged and answered as INTERNAL without details.
 */
export function toServiceError(error: unknown, logger: Logger, method: string): ServiceError {
  if (error instanceof DomainError) return serviceError(codes[error.kind], error.message);
  if (error instanceof Error && statusMarker in error) return error as unknown as ServiceError;
  if (isConnectionFailure(error)) {
    logger.warn({ err: error, method }, 'a backing service is unavailable');
    return serviceError(status.UNAVAILABLE, 'a backing service (database or message queue) is unavailable; retry the call shortly');
  }
  logger.error({ err: error, method }, 'request failed');
  return serviceError(status.INTERNAL, 'internal error; the request may be retried');
}

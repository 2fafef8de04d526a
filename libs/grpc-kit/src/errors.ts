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

/** A domain error keeps its message; anything else is logged and answered as INTERNAL without details. */
export function toServiceError(error: unknown, logger: Logger, method: string): ServiceError {
  if (error instanceof DomainError) return serviceError(codes[error.kind], error.message);
  if (error instanceof Error && statusMarker in error) return error as unknown as ServiceError;
  logger.error({ err: error, method }, 'request failed');
  return serviceError(status.INTERNAL, 'internal error; the request may be retried');
}

// The few kinds of failure a caller can act on. Transports map them to their own codes in one place
// (gRPC: grpc-kit's toStatus); domain code never imports a transport.

export type ErrorKind =
  | 'invalid-argument'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'aborted'
  | 'permission-denied'
  | 'unauthenticated'
  | 'resource-exhausted'
  | 'unavailable';

export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

/** A request field is wrong: the message names the field and says what would be right. */
export const invalidArgument = (field: string, problem: string) => new DomainError('invalid-argument', `${field}: ${problem}`);
export const notFound = (what: string) => new DomainError('not-found', `${what} not found`);
export const alreadyExists = (what: string) => new DomainError('already-exists', `${what} already exists`);
export const failedPrecondition = (message: string) => new DomainError('failed-precondition', message);
export const aborted = (message: string) => new DomainError('aborted', message);

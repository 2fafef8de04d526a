// Adapts an async, authenticated handler to grpc-js's callback style, with one error mapping.
import { status, type Metadata, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from '@webhooks/telemetry';
import type { Caller, TokenAuthenticator } from './auth.js';
import { serviceError, toServiceError } from './errors.js';
import { UndecodableRequest } from './server.js';
import { DomainError } from '@webhooks/domain';

export interface CallContext {
  readonly caller: Caller;
  readonly metadata: Metadata;
  /** True once the client has gone away (deadline or cancel). */
  readonly cancelled: () => boolean;
}

export type UnaryHandler<Req, Res> = (request: Req, context: CallContext) => Promise<Res>;

export function unaryHandlers(auth: TokenAuthenticator, logger: Logger) {
  return function unary<Req, Res>(method: string, handler: UnaryHandler<Req, Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      let caller: Caller;
      try {
        caller = auth.authenticate(call.metadata);
      } catch (error) {
        callback(toServiceError(error, logger, method));
        return;
      }
      if (call.request instanceof UndecodableRequest) {
        callback(toServiceError(new DomainError('invalid-argument', `the request is not a valid ${method}Request message: ${call.request.reason}`), logger, method));
        return;
      }
      handler(call.request, { caller, metadata: call.metadata, cancelled: () => call.cancelled }).then(
        (response) => callback(null, response),
        (error: unknown) => callback(toServiceError(error, logger, method)),
      );
    };
  };
}

export interface StreamContext extends CallContext {
  /** Aborts when the client cancels or goes away. */
  readonly signal: AbortSignal;
  /** Writes one message; resolves once the stream can take more (backpressure). */
  write(message: unknown): Promise<void>;
}

/**
 * The handler of a server-streaming call: resolves when it has sent everything (the call ends OK), or
 * with `{ unavailable: reason }` when the service stops under it (the client resumes elsewhere).
 */
export type StreamHandler<Req> = (request: Req, context: StreamContext) => Promise<void | { readonly unavailable: string }>;

/** Server-streaming calls, authenticated and mapped to a status like unary ones. */
export function streamHandlers(auth: TokenAuthenticator, logger: Logger) {
  return function stream<Req, Res>(method: string, handler: StreamHandler<Req>) {
    return (call: ServerWritableStream<Req, Res>): void => {
      const fail = (error: unknown) => call.emit('error', toServiceError(error, logger, method));
      let caller: Caller;
      try {
        caller = auth.authenticate(call.metadata);
      } catch (error) {
        fail(error);
        return;
      }
      if (call.request instanceof UndecodableRequest) {
        fail(new DomainError('invalid-argument', `the request is not a valid ${method}Request message: ${call.request.reason}`));
        return;
      }
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      call.on('close', () => abort.abort());
      const write = (message: unknown) =>
        new Promise<void>((resolve) => {
          if (abort.signal.aborted || call.write(message as Res)) return resolve();
          const done = () => {
            call.off('drain', done);
            abort.signal.removeEventListener('abort', done);
            resolve();
          };
          call.on('drain', done);
          abort.signal.addEventListener('abort', done, { once: true });
        });
      handler(call.request, { caller, metadata: call.metadata, cancelled: () => call.cancelled, signal: abort.signal, write }).then(
        (result) => {
          if (abort.signal.aborted) return;
          if (result && 'unavailable' in result) call.emit('error', serviceError(status.UNAVAILABLE, result.unavailable));
          else call.end();
        },
        (error: unknown) => {
          if (!abort.signal.aborted) fail(error);
        },
      );
    };
  };
}

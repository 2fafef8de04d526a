// Adapts an async, authenticated handler to grpc-js's callback style, with one error mapping.
import type { Metadata, sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import type { Logger } from '@webhooks/telemetry';
import type { Caller, TokenAuthenticator } from './auth.js';
import { toServiceError } from './errors.js';
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

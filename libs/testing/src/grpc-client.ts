import { credentials, Metadata, type CallOptions, type Client, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';

/** A generated client's unary method, by its last overload (request, metadata, options, callback). */
export type UnaryMethod<Req, Res> = (request: Req, metadata: Metadata, options: Partial<CallOptions>, callback: (error: ServiceError | null, response: Res) => void) => ClientUnaryCall;

/**
 * A request as a test may write it: every field the encoder needs (numbers, enums, strings, booleans,
 * lists) stated, and the fields that may be absent on the wire (sub-messages, oneofs) optional.
 */
export type WireRequest<T> = T extends Date | Uint8Array | readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T as undefined extends T[K] ? K : never]?: WireRequest<T[K]> } & { [K in keyof T as undefined extends T[K] ? never : K]: WireRequest<T[K]> }
    : T;

/**
 * Calls one unary method with a bearer token (or none) and a deadline; resolves or rejects with the
 * ServiceError. The request and response types come from the method, so a request written as a plain
 * object must name every scalar, enum and list field the message has: ts-proto's encoder throws on a missing number or enum
 * ("invalid int32: undefined") at send time. Build partial requests with the message's `fromPartial`.
 */
export function callUnary<C extends Client, Req, Res>(client: C, method: UnaryMethod<Req, Res>, request: NoInfer<WireRequest<Req>>, token?: string, deadlineMs = 10_000): Promise<Res> {
  const metadata = new Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    const options = { deadline: new Date(Date.now() + deadlineMs) };
    (method as unknown as UnaryMethod<Req, Res>).call(client, request as Req, metadata, options, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

/** Rejects unless the call fails with `code`; returns the error's message for further checks. */
export async function expectStatus(promise: Promise<unknown>, code: number): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const serviceError = error as ServiceError;
    if (serviceError.code !== code) throw new Error(`expected status ${code}, got ${serviceError.code}: ${serviceError.details ?? serviceError.message}`, { cause: error });
    return serviceError.details;
  }
  throw new Error(`expected status ${code}, but the call succeeded`);
}

export const insecure = credentials.createInsecure();

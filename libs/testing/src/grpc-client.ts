import { credentials, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';

type UnaryMethod<Req, Res> = (request: Req, metadata: Metadata, options: { deadline: Date }, callback: (error: ServiceError | null, response: Res) => void) => unknown;

/** Calls one unary method with a bearer token (or none) and a deadline; resolves or rejects with the ServiceError. */
export function callUnary<C extends Client, Req, Res>(client: C, method: (this: C, ...args: never[]) => unknown, request: Req, token?: string, deadlineMs = 10_000): Promise<Res> {
  const metadata = new Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    const options = { deadline: new Date(Date.now() + deadlineMs) };
    (method as unknown as UnaryMethod<Req, Res>).call(client, request, metadata, options, (error, response) => (error ? reject(error) : resolve(response)));
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

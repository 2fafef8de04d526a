// The portal's HTTP server: the built page (static files, strict security headers) and /api/*, where
// every request is authenticated and scoped to its session's workspace before any gRPC call. Each API
// request starts a trace of its own, sampled by the portal's own sampler; the gRPC calls it makes are its
// children. A W3C traceparent the browser sends is linked to, never adopted: a page (or anyone with a
// link) must not choose our trace ids or turn sampling on or off for our services.
//
// It faces the internet, so no request may end the process: a malformed path is answered 400, a handler
// that throws 500 (and is logged), a file that cannot be read 500 or a closed connection; slow clients
// are cut off by the headers and request timeouts, and the number of open connections is capped.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import { isSpanContextValid, propagation, ROOT_CONTEXT, SpanKind, type TextMapGetter } from '@opentelemetry/api';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { WebhooksClient } from '@webhooks/client';
import { DomainError } from '@webhooks/domain';
import { context, SpanStatusCode, trace, type Logger } from '@webhooks/telemetry';
import { findRoute } from './api.js';
import type { PortalAuthenticator } from './session.js';

/** Bodies the page sends are small forms; anything larger is refused rather than buffered. */
const maxBodyBytes = 64 * 1024;

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

const httpStatus: Partial<Record<number, number>> = {
  [grpcStatus.INVALID_ARGUMENT]: 400,
  [grpcStatus.NOT_FOUND]: 404,
  [grpcStatus.ALREADY_EXISTS]: 409,
  [grpcStatus.FAILED_PRECONDITION]: 409,
  [grpcStatus.ABORTED]: 409,
  [grpcStatus.PERMISSION_DENIED]: 403,
  [grpcStatus.RESOURCE_EXHAUSTED]: 429,
  [grpcStatus.UNAVAILABLE]: 503,
  [grpcStatus.DEADLINE_EXCEEDED]: 504,
};
const domainStatus: Record<string, [number, string]> = {
  'invalid-argument': [400, 'INVALID_ARGUMENT'],
  unauthenticated: [401, 'UNAUTHENTICATED'],
  'permission-denied': [403, 'PERMISSION_DENIED'],
};

const headerGetter: TextMapGetter<IncomingMessage['headers']> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/** How slow and how many clients may be; the defaults are the portal's configuration defaults. */
export interface PortalServerLimits {
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly maxConnections: number;
}

const defaultLimits: PortalServerLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, maxConnections: 1000 };

export interface PortalServerOptions {
  readonly host: string;
  readonly port: number;
  readonly publicDir: string;
  readonly frameAncestors: readonly string[];
  readonly client: WebhooksClient;
  readonly auth: PortalAuthenticator;
  readonly logger: Logger;
  readonly limits?: PortalServerLimits;
}

export interface PortalServer {
  readonly port: number;
  close(): Promise<void>;
}

/** No inline script or style, nothing from another origin; who may frame the page is configuration. */
export function contentSecurityPolicy(frameAncestors: readonly string[]): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    `frame-ancestors ${frameAncestors.join(' ')}`,
  ].join('; ');
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.statusCode = status;
  response.setHeader('content-type', 'application/json; charset=utf-8');
  response.setHeader('cache-control', 'no-store');
  response.end(JSON.stringify(body));
}

/** A body over the limit: its answer closes the connection, since the rest of the body is never read. */
class BodyTooLarge extends DomainError {
  constructor(message: string) {
    super('invalid-argument', message);
  }
}

function readBody(request: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBodyBytes) {
        // Answered (400, then the connection closes) without reading the rest: destroying the request
        // here would drop the answer with it.
        request.off('data', onData);
        request.pause();
        reject(new BodyTooLarge(`body: larger than ${maxBodyBytes} bytes`));
      } else chunks.push(chunk);
    };
    request.on('data', onData);
    request.on('end', () => {
      if (size === 0) return resolve({});
      try {
        const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
        resolve(parsed as Record<string, unknown>);
      } catch {
        reject(new DomainError('invalid-argument', 'body: must be a JSON object'));
      }
    });
    request.on('error', reject);
  });
}

export async function startPortalServer(options: PortalServerOptions): Promise<PortalServer> {
  const { logger } = options;
  const csp = contentSecurityPolicy(options.frameAncestors);
  const tracer = trace.getTracer('portal');
  const root = normalize(options.publicDir) + sep;

  async function api(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const method = request.method ?? 'GET';
    const found = findRoute(method, url.pathname.slice('/api'.length));
    if (found === undefined) return send(response, 404, { error: { code: 'NOT_FOUND', message: `no API at ${url.pathname}` } });
    if (found === 'method-not-allowed') return send(response, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: `${method} is not allowed on ${url.pathname}` } });
    const browser = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, request.headers, headerGetter));
    const links = browser && isSpanContextValid(browser) ? [{ context: browser, attributes: { 'portal.link': 'browser' } }] : [];
    await tracer.startActiveSpan(`portal ${found.route.name}`, { kind: SpanKind.SERVER, root: true, links }, ROOT_CONTEXT, async (span) => {
      try {
        const header = (name: string) => {
          const value = request.headers[name];
          return Array.isArray(value) ? value[0] : value;
        };
        const scope = options.auth.scope(header('authorization'), header('x-portal-workspace'));
        span.setAttribute('workspace.id', scope.workspaceId);
        const body = method === 'GET' || method === 'DELETE' ? {} : await readBody(request);
        // Every gRPC call says on whose behalf it is made: the webhook activity records it so.
        const actor = scope.operator ? `operator:${scope.operatorName ?? 'operator'}` : 'portal-session';
        const result = await context.with(trace.setSpan(context.active(), span), () =>
          WebhooksClient.runOnBehalfOf(actor, () => found.route.handler(options.client, { method, params: found.params, query: url.searchParams, body, scope })),
        );
        send(response, 200, result);
      } catch (error) {
        if (error instanceof DomainError) {
          if (error instanceof BodyTooLarge) response.setHeader('connection', 'close');
          const [code, name] = domainStatus[error.kind] ?? [400, error.kind.toUpperCase()];
          return send(response, code, { error: { code: name, message: error.message } });
        }
        const serviceError = error as Partial<ServiceError>;
        const mapped = typeof serviceError.code === 'number' ? httpStatus[serviceError.code] : undefined;
        if (mapped) return send(response, mapped, { error: { code: grpcStatus[serviceError.code!], message: serviceError.details } });
        span.setStatus({ code: SpanStatusCode.ERROR });
        logger.error({ err: error, route: found.route.name }, 'portal API call failed');
        send(response, 502, { error: { code: 'INTERNAL', message: 'the webhook service could not answer; try again in a moment' } });
      } finally {
        span.end();
      }
    });
  }

  function fail(response: ServerResponse, status: number, text: string): void {
    response.statusCode = status;
    response.setHeader('content-type', 'text/plain; charset=utf-8');
    response.end(text);
  }

  /** A file of the built page: unknown paths get the page itself, so a reload on any screen works. */
  async function file(request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return fail(response, 400, 'malformed path: a % must start an escape of two hex digits');
    }
    if (decoded.includes('\0')) return fail(response, 400, 'malformed path');
    let target = normalize(join(root, decoded));
    const found = target.startsWith(root) ? await stat(target).catch(() => undefined) : undefined;
    if (!found?.isFile()) {
      // Assets are looked up strictly.
      if (path.startsWith('/assets/')) return fail(response, 404, 'not found');
      target = join(root, 'index.html');
    }
    const type = contentTypes[extname(target)] ?? 'application/octet-stream';
    response.setHeader('content-type', type);
    // Built assets carry a content hash in their names: cached for good. The page is always fetched anew.
    response.setHeader('cache-control', path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (request.method === 'HEAD') return void response.end();
    const stream = createReadStream(target);
    stream.on('error', (error) => {
      logger.error({ err: error, path }, 'portal file could not be read');
      if (!response.headersSent) fail(response, 500, 'the file could not be read');
      else response.destroy();
    });
    stream.pipe(response);
  }

  function route(request: IncomingMessage, response: ServerResponse): Promise<void> | void {
    response.setHeader('content-security-policy', csp);
    response.setHeader('x-content-type-options', 'nosniff');
    response.setHeader('referrer-policy', 'no-referrer');
    response.setHeader('cross-origin-opener-policy', 'same-origin');
    let url: URL;
    try {
      url = new URL(request.url ?? '/', 'http://portal');
    } catch {
      return fail(response, 400, 'bad request');
    }
    if (url.pathname === '/api' || url.pathname.startsWith('/api/')) return api(request, response, url);
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('allow', 'GET, HEAD');
      return fail(response, 405, 'method not allowed');
    }
    return file(request, response, url.pathname);
  }

  /** Whatever a handler throws, synchronously or later, is answered (500) and logged; the process goes on. */
  function unexpected(response: ServerResponse, error: unknown): void {
    logger.error({ err: error }, 'portal request failed');
    if (!response.headersSent) send(response, 500, { error: { code: 'INTERNAL', message: 'unexpected error' } });
    else response.destroy();
  }

  const limits = options.limits ?? defaultLimits;
  const server: Server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // Node checks both timeouts on this interval (30 s by default): a tenth of the headers timeout keeps
      // a slow client's cut-off close to what is configured.
      connectionsCheckingInterval: Math.max(250, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 10))),
    },
    (request, response) => {
      try {
        const pending = route(request, response);
        if (pending) pending.catch((error: unknown) => unexpected(response, error));
      } catch (error) {
        unexpected(response, error);
      }
    },
  );
  server.maxConnections = limits.maxConnections;
  // A request Node cannot parse (bad method, header or framing, or a timeout) is answered by Node's own
  // handler; a socket error after that must not surface as an unhandled 'error'.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || error.code === 'ECONNRESET') return void socket.destroy();
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  });
  await new Promise<void>((resolve) => server.listen(options.port, options.host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

// The portal's HTTP surface under hostile and broken clients, against the built portal as a process:
// malformed paths, methods, headers and bodies, huge and slow requests, JSON that is not an object,
// unknown routes with and without a token, and a few hundred generated requests. Every one must get a
// status (or, for a slow or surplus client, a closed connection), and the portal must keep serving.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Plan } from '@webhooks/contracts';
import { callUnary, startSystem, testToken, uniqueName, type RunningSystem, type ServiceProcess } from '@webhooks/testing';

const sessionKey = 'portal-test-session-key-0123456789abcdef';
/** Scaled down from the 10 s and 30 s defaults; the assertions are about being cut off, not when. */
const headersTimeoutMs = 2_000;
const requestTimeoutMs = 3_000;
const maxConnections = 40;

interface RawAnswer {
  /** The status of the first response, when one came. */
  readonly status?: number;
  readonly text: string;
  /** The server closed the connection before `waitMs` ran out. */
  readonly closed: boolean;
  readonly elapsedMs: number;
}

/** Sends bytes as they are and reads until the server closes the connection or `waitMs` passes. */
function raw(port: number, bytes: string | Buffer, waitMs = 5_000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1');
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1];
      resolve({ status: status ? Number(status) : undefined, text, closed, elapsedMs: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', () => finish(true));
    // A reset after the answer is how a server may end a request it refuses to read further.
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' || error.code === 'EPIPE' ? finish(true) : reject(error)));
    socket.write(bytes);
  });
}

const request = (method: string, path: string, headers: string[] = [], body = '') =>
  [`${method} ${path} HTTP/1.1`, 'host: portal', 'connection: close', ...headers, ...(body ? [`content-length: ${Buffer.byteLength(body, 'latin1')}`] : []), '', body].join('\r\n');

/** A small deterministic generator, so a failing case can be found again from its index. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

describe('portal HTTP surface', () => {
  let system: RunningSystem;
  let portal: ServiceProcess;
  let port = 0;
  let token = '';
  const workspaceId = uniqueName('surface');

  const stillServing = async (context: string) => {
    assert.ok(portal.running, `the portal process exited after ${context}:\n${portal.logText()}`);
    const page = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(page.status, 200, `the page after ${context}`);
    await page.arrayBuffer();
  };

  before(async () => {
    system = await startSystem({ PORTAL_SESSION_KEY: sessionKey });
    portal = await system.startService('portal', {
      PORTAL_HTTP_PORT: '0', PORTAL_OPS_PORT: '0', PORTAL_API_TOKEN: testToken,
      PORTAL_HEADERS_TIMEOUT: `${headersTimeoutMs}ms`, PORTAL_REQUEST_TIMEOUT: `${requestTimeoutMs}ms`, PORTAL_MAX_CONNECTIONS: String(maxConnections),
    });
    port = portal.port('httpPort');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'Surface', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    token = (await callUnary(system.subscription, system.subscription.createPortalSession, { workspaceId, ttl: undefined }, testToken)).token;
  });

  after(async () => {
    await system?.stop();
  });

  it('answers a malformed percent escape with 400 and keeps running', async () => {
    for (const path of ['/%', '/%zz', '/assets/%', '/a%E0%A4%A', '/settings/%%', '/api/%', '/api/webhooks/%']) {
      const answer = await raw(port, request('GET', path));
      assert.ok(answer.status === 400 || answer.status === 401 || answer.status === 404, `${path}: ${answer.status ?? 'no status'}`);
    }
    const answer = await raw(port, request('GET', '/%'));
    assert.equal(answer.status, 400);
    await stillServing('malformed escapes');
  });

  it('serves nothing outside the built page, whatever the path', async () => {
    for (const path of ['/../../../../etc/passwd', '/..%2f..%2f..%2f..%2fetc%2fpasswd', '/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/assets/..%2f..%2f..%2fpackage.json', '/a%00b', '//etc/passwd', `/${'a'.repeat(6_000)}`]) {
      const answer = await raw(port, request('GET', path));
      assert.ok(answer.status !== undefined && answer.status < 500, `${path.slice(0, 60)}: ${answer.status ?? 'no status'}`);
      assert.doesNotMatch(answer.text, /root:x:0:0|"workspaces"/, path.slice(0, 60));
    }
    const head = await raw(port, request('HEAD', '/'));
    assert.equal(head.status, 200);
    assert.doesNotMatch(head.text.split('\r\n\r\n')[1] ?? '', /<html/i, 'HEAD has no body');
    await stillServing('path traversal');
  });

  it('answers odd and invalid methods with a status', async () => {
    const cases: [string, string][] = [['PROPFIND', '/'], ['DELETE', '/'], ['POST', '/index.html'], ['FOO', '/api/webhooks'], ['OPTIONS', '/api/webhooks'], ['TRACE', '/'], ['G@T', '/'], ['', '/']];
    for (const [method, path] of cases) {
      const answer = await raw(port, request(method, path));
      assert.ok(answer.status !== undefined && answer.status >= 400 && answer.status < 500, `${method || '(empty)'} ${path}: ${answer.status ?? 'no status'}`);
    }
    await stillServing('odd methods');
  });

  it('answers malformed, huge and repeated headers with a status', async () => {
    const cases: [string, string][] = [
      ['no host', 'GET / HTTP/1.1\r\nconnection: close\r\n\r\n'],
      ['a header without a colon', 'GET / HTTP/1.1\r\nhost: portal\r\nnot a header\r\n\r\n'],
      ['a control character in a value', 'GET / HTTP/1.1\r\nhost: portal\r\nx-a: b\x01c\r\n\r\n'],
      ['a 64 KiB header', request('GET', '/', [`x-big: ${'b'.repeat(64 * 1024)}`])],
      ['3,000 headers', request('GET', '/', Array.from({ length: 3_000 }, (_, n) => `x-h${n}: v`))],
      ['a huge bearer token', request('GET', '/api/webhooks', [`authorization: Bearer ${'t'.repeat(12_000)}`])],
      ['an empty bearer', request('GET', '/api/webhooks', ['authorization: Bearer '])],
      ['basic credentials', request('GET', '/api/webhooks', ['authorization: Basic dXNlcjpwYXNz'])],
      ['two authorization headers', request('GET', '/api/webhooks', [`authorization: Bearer ${token}`, 'authorization: Bearer other'])],
      ['two workspace headers', request('GET', '/api/webhooks', [`authorization: Bearer ${token}`, 'x-portal-workspace: a', 'x-portal-workspace: b'])],
      ['a workspace header of odd bytes', request('GET', '/api/webhooks', [`authorization: Bearer ${token}`, 'x-portal-workspace: \xff\xfe'])],
      ['a traceparent of garbage', request('GET', '/api/webhooks', [`authorization: Bearer ${token}`, 'traceparent: 00-zz-yy-99'])],
      ['a negative content-length', 'POST /api/webhooks HTTP/1.1\r\nhost: portal\r\ncontent-length: -1\r\n\r\n'],
      ['a content-length of letters', 'POST /api/webhooks HTTP/1.1\r\nhost: portal\r\ncontent-length: abc\r\n\r\n'],
      ['two content-lengths', 'POST /api/webhooks HTTP/1.1\r\nhost: portal\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}'],
      ['broken chunks', 'POST /api/webhooks HTTP/1.1\r\nhost: portal\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'],
      ['a request line of NUL bytes', '\0\0\0\0\r\n\r\n'],
      ['HTTP/0.9', 'GET /\r\n\r\n'],
    ];
    for (const [name, bytes] of cases) {
      const answer = await raw(port, Buffer.from(bytes, 'latin1'));
      assert.ok(answer.status !== undefined && answer.status < 500, `${name}: ${answer.status ?? 'no status'} ${answer.text.slice(0, 80)}`);
    }
    await stillServing('malformed headers');
  });

  it('answers bodies that are not a JSON object, or too large, with 400 and a message', async () => {
    const auth = [`authorization: Bearer ${token}`, 'content-type: application/json'];
    for (const body of ['[]', '"text"', 'null', '1', 'true', '{', '{"name":', '\xff\xfe{}', `{"name":"${'n'.repeat(70 * 1024)}"}`]) {
      const answer = await raw(port, Buffer.from(request('POST', '/api/webhooks', auth, body), 'latin1'));
      assert.equal(answer.status, 400, `${body.slice(0, 20)}: ${answer.text.slice(0, 200)}`);
      if (!answer.text.includes('larger than')) assert.match(answer.text, /must be a JSON object/);
    }
    // A body far over the limit is refused without being read to its end.
    const huge = await raw(port, Buffer.from(request('POST', '/api/webhooks', auth, 'x'.repeat(4 * 1024 * 1024)), 'latin1'));
    assert.ok(huge.status === 400 || huge.closed, `4 MiB body: ${huge.status ?? 'no status'}`);
    await stillServing('bad bodies');
  });

  it('answers unknown routes with 404 or 401, with and without a token', async () => {
    for (const [path, headers, expected] of [
      ['/api', [], 404], ['/api/nope', [], 404], ['/api/webhooks/x/y/z', [], 404],
      ['/api/nope', [`authorization: Bearer ${token}`], 404], ['/api/webhooks', [], 401], ['/api/webhooks', ['authorization: Bearer forged.token'], 401],
    ] as const) {
      const answer = await raw(port, request('GET', path, [...headers]));
      assert.equal(answer.status, expected, `${path} ${headers.length ? 'with' : 'without'} a token`);
    }
    await stillServing('unknown routes');
  });

  it('answers 300 generated requests with a status each', async () => {
    const random = generator(20261205);
    const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
    const pathBytes = 'abcXYZ019/%._-~?#&=;:@!$\'()*+,[]{}|\\^`"<> \x7f\xff\xc3\xa9';
    const methods = ['GET', 'HEAD', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS', 'BREW', 'get'];
    const prefixes = ['/', '/api/', '/api/webhooks/', '/assets/', '/api/deliveries/'];
    for (let n = 0; n < 300; n++) {
      let path = pick(prefixes);
      for (let length = Math.floor(random() * 24); length > 0; length--) path += pick([...pathBytes]);
      const headers: string[] = [];
      if (random() < 0.5) headers.push(`authorization: Bearer ${random() < 0.5 ? token : 'x'.repeat(Math.floor(random() * 300))}`);
      if (random() < 0.3) headers.push(`x-portal-workspace: ${pick(['', workspaceId, 'ws_other', '%', '\xff'])}`);
      if (random() < 0.3) headers.push(`content-type: ${pick(['application/json', 'text/plain', ''])}`);
      const body = random() < 0.4 ? pick(['{}', '[]', '{"name":1}', '{"url":"http://169.254.169.254/"}', '{"eventTypes":"x"}', '\0', 'x']) : '';
      const answer = await raw(port, Buffer.from(request(pick(methods), path, headers, body), 'latin1'));
      assert.ok(answer.status !== undefined, `generated request ${n} (${path}): no status, closed ${answer.closed}`);
      assert.notEqual(answer.status, 500, `generated request ${n} (${path}): ${answer.text.slice(0, 300)}`);
    }
    await stillServing('generated requests');
  });

  it('cuts off a client that sends its headers slowly, and one that never finishes its body', async () => {
    const slowHeaders = await raw(port, 'GET / HTTP/1.1\r\nhost: portal\r\nx-slow: ', 10 * headersTimeoutMs);
    assert.ok(slowHeaders.closed, 'the connection with unfinished headers was closed');
    assert.ok(slowHeaders.status === undefined || slowHeaders.status === 408, `slow headers: ${slowHeaders.status}`);
    const slowBody = await raw(port, `POST /api/webhooks HTTP/1.1\r\nhost: portal\r\nauthorization: Bearer ${token}\r\ncontent-length: 100\r\n\r\n{"na`, 10 * requestTimeoutMs);
    assert.ok(slowBody.closed, 'the connection with an unfinished body was closed');
    console.log(`slow headers closed after ${slowHeaders.elapsedMs} ms (headers timeout ${headersTimeoutMs} ms); slow body after ${slowBody.elapsedMs} ms (request timeout ${requestTimeoutMs} ms)`);
    await stillServing('slow clients');
  });

  it('closes connections beyond its limit at once and keeps serving the rest', async () => {
    const sockets = await Promise.all(
      Array.from({ length: maxConnections + 20 }, () =>
        new Promise<import('node:net').Socket>((resolve) => {
          const socket = connect(port, '127.0.0.1', () => resolve(socket));
          socket.on('error', () => resolve(socket));
        })),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const open = sockets.filter((socket) => !socket.destroyed && socket.readyState === 'open');
    const closed = await Promise.all(sockets.map((socket) => new Promise<boolean>((resolve) => {
      if (socket.destroyed) return resolve(true);
      socket.once('close', () => resolve(true));
      setTimeout(() => resolve(false), 500);
    })));
    assert.ok(closed.filter(Boolean).length >= 20, `at least the 20 surplus connections were closed (open at first: ${open.length})`);
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await stillServing('too many connections');
  });
});

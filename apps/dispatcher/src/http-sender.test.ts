// The outbound HTTP client against real endpoints on 127.0.0.1.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HttpReceiver } from '@webhooks/testing';
import { HttpSender, responseExcerptBytes } from './http-sender.js';

const body = new TextEncoder().encode('{"id":"evt_1"}');

describe('HttpSender', () => {
  let receiver: HttpReceiver;

  before(async () => {
    receiver = await HttpReceiver.start((request, res) => {
      if (request.path === '/big') {
        res.write('x'.repeat(1024 * 1024));
        res.end('y'.repeat(9 * 1024 * 1024));
      } else if (request.path === '/trickle') {
        // Headers at once, then the body never finishes.
        res.writeHead(200);
        res.write('partial');
      } else if (request.path === '/teapot') {
        res.statusCode = 418;
        res.end('no coffee');
      } else res.end('ok');
    });
  });

  after(() => receiver.close());

  it('checks the address a host name resolves to when it connects, not only the URL', async () => {
    // "localhost" resolves to a loopback address: refused at connect time, nothing is sent.
    const strict = new HttpSender({ allowHttp: true, allowedHosts: [], maxLength: 2048 }, 2_000);
    const url = receiver.url.replace('127.0.0.1', 'localhost');
    const before = receiver.requests.length;
    const refused = await strict.send({ url, headers: {}, body });
    assert.equal(refused.kind, 'failed');
    assert.match((refused as { reason: string }).reason, /loopback/);
    assert.equal(receiver.requests.length, before);
    await strict.close();

    const allowed = new HttpSender({ allowHttp: true, allowedHosts: ['localhost'], maxLength: 2048 }, 2_000);
    assert.equal((await allowed.send({ url, headers: {}, body })).kind, 'succeeded');
    await allowed.close();
  });

  it('keeps 4 KiB of a huge response body and does not read the rest', async () => {
    const sender = new HttpSender({ allowHttp: true, allowedHosts: ['127.0.0.0/8'], maxLength: 2048 }, 5_000);
    const result = await sender.send({ url: receiver.url.replace('/hook', '/big'), headers: {}, body });
    assert.equal(result.kind, 'succeeded');
    assert.equal(result.excerpt.length, responseExcerptBytes);
    await sender.close();
  });

  it('fails an attempt whose body is still arriving at the deadline', async () => {
    const sender = new HttpSender({ allowHttp: true, allowedHosts: ['127.0.0.0/8'], maxLength: 2048 }, 300);
    const result = await sender.send({ url: receiver.url.replace('/hook', '/trickle'), headers: {}, body });
    assert.equal(result.kind, 'failed');
    assert.equal((result as { reason: string }).reason, 'timeout: no complete response within 300 ms');
    await sender.close();
  });

  it('reports a non-2xx status with the response excerpt, and a refused connection', async () => {
    const sender = new HttpSender({ allowHttp: true, allowedHosts: ['127.0.0.0/8'], maxLength: 2048 }, 2_000);
    const teapot = await sender.send({ url: receiver.url.replace('/hook', '/teapot'), headers: {}, body });
    assert.deepEqual({ kind: teapot.kind, statusCode: teapot.statusCode, excerpt: teapot.excerpt }, { kind: 'failed', statusCode: 418, excerpt: 'no coffee' });
    assert.equal((teapot as { reason: string }).reason, 'status 418');
    const closed = await sender.send({ url: 'http://127.0.0.1:1/hook', headers: {}, body });
    assert.equal((closed as { reason: string }).reason, 'connection refused');
    await sender.close();
  });
});

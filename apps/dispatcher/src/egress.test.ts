// Deliveries through an HTTP CONNECT proxy (a real one on 127.0.0.1): the dispatcher resolves and checks
// the endpoint's address itself and asks the proxy for that IP, never for the name.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConnectProxy, HttpReceiver } from '@webhooks/testing';
import { HttpSender } from './http-sender.js';

const body = new TextEncoder().encode('{"id":"evt_1"}');

describe('egress proxy', () => {
  let receiver: HttpReceiver;
  let proxy: ConnectProxy;

  before(async () => {
    receiver = await HttpReceiver.start();
    proxy = await ConnectProxy.start();
  });

  after(async () => {
    await receiver.close();
    await proxy.close();
  });

  it('delivers through the proxy, asking it for the checked IP address', async () => {
    const sender = new HttpSender({ allowHttp: true, allowedHosts: ['127.0.0.0/8', '::1/128', 'localhost'], maxLength: 2048 }, 2_000, { proxyUrl: new URL(proxy.url) });
    const port = new URL(receiver.url).port;
    const before = proxy.connects.length;
    assert.equal((await sender.send({ url: receiver.url, headers: {}, body })).kind, 'succeeded');
    assert.equal((await sender.send({ url: receiver.url.replace('127.0.0.1', 'localhost'), headers: {}, body })).kind, 'succeeded');
    const asked = proxy.connects.slice(before);
    assert.equal(asked[0], `127.0.0.1:${port}`);
    // The name was resolved here: the proxy got an address, not "localhost".
    assert.match(asked[1]!, new RegExp(`^(127\\.0\\.0\\.1|\\[::1\\]):${port}$`));
    await sender.close();
  });

  it('refuses a name resolving to an internal address before the proxy is asked', async () => {
    const strict = new HttpSender({ allowHttp: true, allowedHosts: [], maxLength: 2048 }, 2_000, { proxyUrl: new URL(proxy.url) });
    const connects = proxy.connects.length;
    const requests = receiver.requests.length;
    const refused = await strict.send({ url: receiver.url.replace('127.0.0.1', 'localhost'), headers: {}, body });
    assert.equal(refused.kind, 'failed');
    assert.match((refused as { reason: string }).reason, /loopback/);
    assert.equal(proxy.connects.length, connects, 'the proxy was asked');
    assert.equal(receiver.requests.length, requests);
    await strict.close();
  });

  it('fails the attempt with a clear reason when the proxy cannot be reached', async () => {
    const sender = new HttpSender({ allowHttp: true, allowedHosts: ['127.0.0.0/8'], maxLength: 2048 }, 2_000, { proxyUrl: new URL('http://127.0.0.1:1') });
    const result = await sender.send({ url: receiver.url, headers: {}, body });
    assert.equal((result as { reason: string }).reason, 'egress proxy unreachable: ECONNREFUSED');
    await sender.close();
  });
});

// The token cache against a real token endpoint on 127.0.0.1, and the pure rules of the token answer.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HttpReceiver } from '@webhooks/testing';
import { HttpSender } from './http-sender.js';
import { OAuthTokens, readTokenAnswer, usableUntil, type OAuthCredentials } from './oauth-tokens.js';

describe('readTokenAnswer and usableUntil', () => {
  it('uses a token until shortly before it expires', () => {
    assert.equal(usableUntil(0, 3_600_000), 3_600_000 - 60_000);
    assert.equal(usableUntil(0, 2_000), 1_800);
  });

  it('names the status and the standard error code only', () => {
    assert.deepEqual(readTokenAnswer(400, '{"error":"invalid_client","error_description":"secret s3cr3t wrong"}', 0), { ok: false, reason: 'oauth token: 400 invalid_client' });
    assert.deepEqual(readTokenAnswer(500, 'oops', 0), { ok: false, reason: 'oauth token: 500' });
    assert.deepEqual(readTokenAnswer(200, '{"token_type":"bearer"}', 0), { ok: false, reason: 'oauth token: the answer has no usable access_token' });
    assert.deepEqual(readTokenAnswer(200, '{"access_token":"t","token_type":"mac"}', 0), { ok: false, reason: 'oauth token: token_type "mac" is not bearer' });
    assert.deepEqual(readTokenAnswer(200, '{"access_token":"t","expires_in":10}', 0), { ok: true, accessToken: 't', usableUntil: 9_000 });
  });
});

describe('OAuthTokens', () => {
  let tokenServer: HttpReceiver;
  let issued = 0;
  const endpoint = 'https://crm.example.com';
  const credentials = (url: string): OAuthCredentials => ({ kind: 'oauth', tokenUrl: url, clientId: 'id', clientSecret: 'secret', scope: '', audience: '' });

  before(async () => {
    tokenServer = await HttpReceiver.start((_req, res) => {
      issued++;
      res.end(JSON.stringify({ access_token: `t${issued}`, token_type: 'Bearer', expires_in: 3600 }));
    });
  });
  after(() => tokenServer.close());

  it('fetches once per lifetime, and again only for the token the endpoint refused', async () => {
    const sender = new HttpSender({ allowHttp: true, allowedHosts: ['127.0.0.0/8'], maxLength: 2048 }, 2_000);
    const tokens = new OAuthTokens(sender, 'test');
    const deadline = Date.now() + 2_000;
    const before = tokenServer.requests.length;
    const [a, b] = await Promise.all([tokens.token('wh_1', endpoint, credentials(tokenServer.url), deadline), tokens.token('wh_1', endpoint, credentials(tokenServer.url), deadline)]);
    assert.deepEqual(a, b);
    assert.equal((await tokens.token('wh_1', endpoint, credentials(tokenServer.url), deadline)).ok, true);
    assert.equal(tokenServer.requests.length - before, 1);
    const refused = (a as { accessToken: string }).accessToken;
    const fresh = await tokens.token('wh_1', endpoint, credentials(tokenServer.url), deadline, refused);
    assert.notEqual((fresh as { accessToken: string }).accessToken, refused);
    assert.equal(tokenServer.requests.length - before, 2);
    await sender.close();
  });

  it('never hands a token obtained for one endpoint origin to another', async () => {
    const sender = new HttpSender({ allowHttp: true, allowedHosts: ['127.0.0.0/8'], maxLength: 2048 }, 2_000);
    const tokens = new OAuthTokens(sender, 'test');
    const deadline = Date.now() + 2_000;
    const before = tokenServer.requests.length;
    const first = await tokens.token('wh_3', 'https://crm.example.com', credentials(tokenServer.url), deadline);
    const samePath = await tokens.token('wh_3', 'https://crm.example.com', credentials(tokenServer.url), deadline);
    const moved = await tokens.token('wh_3', 'https://attacker.example.net', credentials(tokenServer.url), deadline);
    assert.deepEqual(samePath, first);
    assert.notDeepEqual(moved, first, 'the webhook moved to another origin gets a token of its own');
    assert.equal(tokenServer.requests.length - before, 2);
    await sender.close();
  });

  it('refuses a token URL whose name resolves to an internal address, at connect time', async () => {
    const strict = new HttpSender({ allowHttp: true, allowedHosts: [], maxLength: 2048 }, 2_000);
    const before = tokenServer.requests.length;
    const result = await new OAuthTokens(strict, 'test').token('wh_2', endpoint, credentials(tokenServer.url.replace('127.0.0.1', 'localhost')), Date.now() + 2_000);
    assert.equal(result.ok, false);
    assert.match((result as { reason: string }).reason, /^oauth token: host "localhost" resolved to .*loopback/);
    assert.equal(tokenServer.requests.length, before);
    await strict.close();
  });
});

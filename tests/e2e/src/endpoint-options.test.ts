// Endpoint options observed from real endpoints on 127.0.0.1, with every delivery and OAuth token request
// leaving through a real CONNECT proxy (EGRESS_PROXY_URL): a rate limit paces a webhook (gaps seen by the
// receiver, order kept, a failure while paced retried on the normal schedule); HTTP Basic credentials
// arrive; an OAuth token is fetched once and shared, replaced once after a 401, and a token endpoint
// failure is a failed attempt saying so; a token URL on an internal address is refused; a mutual-TLS
// endpoint accepts the client certificate and refuses a delivery without it; and no credential appears in
// an API answer, a log line of any service, or the delivery log.
import assert from 'node:assert/strict';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import {
  AttemptDecision,
  CreateWebhookRequest,
  EndpointAuthKind,
  type EndpointAuth,
  Webhook,
} from '@webhooks/contracts';
import {
  attemptRecords,
  callUnary,
  ConnectProxy,
  createTestCertificateAuthority,
  expectStatus,
  HttpReceiver,
  startSystem,
  testToken,
  uniqueName,
  type RunningSystem,
  type TestCertificateAuthority,
} from '@webhooks/testing';
import { contactCreated, publish, workspaceWithWebhook } from './support.js';

const retryDelayMs = 300;
const basicPassword = 'basic-pa55-Zq81';
const clientSecret = 'oauth-client-secret-Xk42';
const tokenPrefix = 'access-token-Wm7';

describe('endpoint options: rate limit, endpoint authentication, egress proxy', () => {
  let system: RunningSystem;
  let proxy: ConnectProxy;
  let ca: TestCertificateAuthority;
  const receivers: HttpReceiver[] = [];
  const answers: unknown[] = [];
  let workspaceId: string;

  before(async () => {
    ca = createTestCertificateAuthority();
    proxy = await ConnectProxy.start();
    system = await startSystem({
      RETRY_DELAYS: `${retryDelayMs}ms,${retryDelayMs}ms,${retryDelayMs}ms`,
      GIVE_UP_AFTER: '5s',
      ATTEMPT_TIMEOUT: '2s',
      // Loopback only (the local profile also allows private ranges): a 10.x token URL is refused.
      ALLOWED_ENDPOINT_HOSTS: '127.0.0.0/8',
      EGRESS_PROXY_URL: proxy.url,
      // The dispatcher trusts the test CA's endpoint certificate.
      NODE_EXTRA_CA_CERTS: ca.caFile,
    });
    workspaceId = (await workspaceWithWebhook(system, 'https://example.com/unused')).workspaceId;
  });

  after(async () => {
    const codes = await system?.stop();
    for (const receiver of receivers) await receiver.close();
    await proxy?.close();
    ca?.remove();
    assert.deepEqual(codes, { subscription: [0], 'event-ingest': [0], dispatcher: [0], notifier: [0] });
  });

  async function receiver(...args: Parameters<typeof HttpReceiver.start>): Promise<HttpReceiver> {
    const r = await HttpReceiver.start(...args);
    receivers.push(r);
    return r;
  }

  async function createWebhook(url: string, options: { auth?: EndpointAuth; rateLimit?: number } = {}): Promise<string> {
    // fromPartial: a field the test leaves out (a mutual-TLS CA bundle, say) is encoded as its default.
    const created = await callUnary(system.subscription, system.subscription.createWebhook, CreateWebhookRequest.fromPartial({
      workspaceId, name: uniqueName('hook'), url, eventTypes: ['contact.created'], headers: {}, rateLimit: options.rateLimit ?? 0, auth: options.auth,
    }), testToken);
    answers.push(created);
    return created.webhook!.id;
  }

  async function getWebhook(webhookId: string): Promise<Webhook> {
    const answer = await callUnary(system.subscription, system.subscription.getWebhook, { workspaceId, webhookId }, testToken);
    answers.push(answer);
    return answer.webhook!;
  }

  const ids = (requests: { body: string }[]) => requests.map((r) => JSON.parse(r.body).id as string);

  it('paces a webhook to its rate limit, keeps order, and retries a failure on the normal schedule', async () => {
    // The 3rd request (e3's first attempt) fails.
    const endpoint = await receiver((_req, res, index) => {
      res.statusCode = index === 2 ? 500 : 200;
      res.end();
    });
    const webhookId = await createWebhook(endpoint.url);
    const updated = await callUnary(system.subscription, system.subscription.updateWebhook, {
      workspaceId, webhook: Webhook.fromPartial({ id: webhookId, rateLimit: 20 }), updateMask: ['rate_limit'], expectedVersion: 0,
    }, testToken);
    assert.equal(updated.webhook!.rateLimit, 20);
    assert.equal((await getWebhook(webhookId)).rateLimit, 20);
    await expectStatus(
      callUnary(system.subscription, system.subscription.updateWebhook, { workspaceId, webhook: Webhook.fromPartial({ id: webhookId, rateLimit: 5000 }), updateMask: ['rate_limit'], expectedVersion: 0 }, testToken),
      status.INVALID_ARGUMENT,
    );

    const events = ['e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'e8'];
    for (const id of events) await publish(system, contactCreated(id, workspaceId));
    const requests = await endpoint.waitForRequests(9, 30_000);
    assert.deepEqual(ids(requests), ['e1', 'e2', 'e3', 'e3', 'e4', 'e5', 'e6', 'e7', 'e8']);
    // 20 per second: consecutive requests at least 50 ms apart (45 for the receiver's clock granularity).
    for (let i = 1; i < requests.length; i++) {
      const gap = requests[i]!.receivedAt - requests[i - 1]!.receivedAt;
      assert.ok(gap >= 45, `requests ${i - 1} and ${i} came ${gap} ms apart`);
    }
    // The failure was retried after the normal delay, counted from that attempt, as attempt 2.
    assert.ok(requests[3]!.receivedAt - requests[2]!.receivedAt >= retryDelayMs - 5);
    const records = await attemptRecords(system.prefix, workspaceId, webhookId, 9);
    const e3 = records.filter((r) => r.eventId === 'e3');
    assert.deepEqual(e3.map((r) => [r.attemptNumber, r.decision]), [[1, AttemptDecision.ATTEMPT_DECISION_RETRY], [2, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED]]);
    assert.equal(e3[0]!.retryTime!.getTime() - e3[0]!.firstAttemptTime!.getTime(), retryDelayMs);
    // Waiting for the limit made no attempt: every other event has exactly one.
    assert.equal(records.filter((r) => r.eventId !== 'e3').every((r) => r.attemptNumber === 1), true);
  });

  it('sends HTTP Basic credentials, and answers only which kind of authentication is set', async () => {
    const endpoint = await receiver();
    const webhookId = await createWebhook(endpoint.url, { auth: { method: { $case: 'basic', value: { username: 'acme', password: basicPassword } } } });
    const webhook = await getWebhook(webhookId);
    assert.equal(webhook.authKind, EndpointAuthKind.ENDPOINT_AUTH_KIND_BASIC);
    assert.equal(webhook.auth, undefined);
    await publish(system, contactCreated('basic-1', workspaceId));
    const [request] = await endpoint.waitForRequests(1);
    assert.equal(request!.headers.authorization, `Basic ${Buffer.from(`acme:${basicPassword}`).toString('base64')}`);
  });

  it('never carries endpoint authentication to another origin: a url change there must set it again or remove it', async () => {
    const home = await receiver();
    const elsewhere = await receiver();
    const basic = (username: string, password: string): EndpointAuth => ({ method: { $case: 'basic', value: { username, password } } });
    const update = (webhookId: string, webhook: Partial<Webhook>, updateMask: string[]) =>
      callUnary(system.subscription, system.subscription.updateWebhook, { workspaceId, webhook: Webhook.fromPartial({ id: webhookId, ...webhook }), updateMask, expectedVersion: 0 }, testToken);
    const webhookId = await createWebhook(home.url, { auth: basic('acme', basicPassword) });

    // Another origin with the url alone: refused, and the webhook keeps its url and authentication.
    const message = await expectStatus(update(webhookId, { url: elsewhere.url }, ['url']), status.INVALID_ARGUMENT);
    assert.match(message, /^webhook\.auth: the url moves from http:\/\/127\.0\.0\.1:\d+ to http:\/\/127\.0\.0\.1:\d+, and endpoint authentication is never carried to another origin/);
    const kept = await getWebhook(webhookId);
    assert.equal(kept.url, home.url);
    assert.equal(kept.authKind, EndpointAuthKind.ENDPOINT_AUTH_KIND_BASIC);

    // Another path of the same origin keeps it.
    const samePath = `${new URL(home.url).origin}/other-path`;
    await update(webhookId, { url: samePath }, ['url']);
    await publish(system, contactCreated('origin-1', workspaceId));
    const [atHome] = await home.waitForRequests(1);
    assert.equal(atHome!.path, '/other-path');
    assert.equal(atHome!.headers.authorization, `Basic ${Buffer.from(`acme:${basicPassword}`).toString('base64')}`);

    // The move with new credentials in the same update: the new origin gets only those.
    await update(webhookId, { url: elsewhere.url, auth: basic('elsewhere', 'second-pa55') }, ['url', 'auth']);
    await publish(system, contactCreated('origin-2', workspaceId));
    const [moved] = await elsewhere.waitForRequests(1);
    assert.equal(moved!.headers.authorization, `Basic ${Buffer.from('elsewhere:second-pa55').toString('base64')}`);

    // Or removed in the same update: the next origin gets no authorization at all.
    const third = await receiver();
    await update(webhookId, { url: third.url }, ['url', 'auth']);
    assert.equal((await getWebhook(webhookId)).authKind, EndpointAuthKind.ENDPOINT_AUTH_KIND_UNSPECIFIED);
    await publish(system, contactCreated('origin-3', workspaceId));
    const [bare] = await third.waitForRequests(1);
    assert.equal(bare!.headers.authorization, undefined);
    assert.equal(home.requests.length, 1, 'the first endpoint got only the delivery made while it was the url');
  });

  it('fetches an OAuth token once, shares it, and replaces it once after a 401', async () => {
    let issued = 0;
    const tokenServer = await receiver((_req, res) => {
      issued++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ access_token: `${tokenPrefix}-${issued}`, token_type: 'Bearer', expires_in: 3600 }));
    });
    let refused = '';
    const endpoint = await receiver((req, res) => {
      res.statusCode = req.headers.authorization === refused ? 401 : 200;
      res.end();
    });
    const auth: EndpointAuth = { method: { $case: 'oauthClientCredentials', value: { tokenUrl: tokenServer.url.replace('/hook', '/token'), clientId: 'acme-client', clientSecret, scope: 'webhooks', audience: '' } } };
    const webhookId = await createWebhook(endpoint.url, { auth });
    assert.equal((await getWebhook(webhookId)).authKind, EndpointAuthKind.ENDPOINT_AUTH_KIND_OAUTH_CLIENT_CREDENTIALS);

    await publish(system, contactCreated('oauth-1', workspaceId));
    await publish(system, contactCreated('oauth-2', workspaceId));
    const first = await endpoint.waitForRequests(2);
    assert.deepEqual(first.map((r) => r.headers.authorization), [`Bearer ${tokenPrefix}-1`, `Bearer ${tokenPrefix}-1`]);
    assert.equal(tokenServer.requests.length, 1, 'one token for both deliveries');
    const tokenRequest = tokenServer.requests[0]!;
    assert.equal(tokenRequest.headers.authorization, `Basic ${Buffer.from(`acme-client:${clientSecret}`).toString('base64')}`);
    assert.deepEqual(Object.fromEntries(new URLSearchParams(tokenRequest.body)), { grant_type: 'client_credentials', scope: 'webhooks' });

    // The endpoint stops accepting the first token: one refresh, and the delivery goes through with the new one.
    refused = `Bearer ${tokenPrefix}-1`;
    await publish(system, contactCreated('oauth-3', workspaceId));
    const all = await endpoint.waitForRequests(4);
    assert.deepEqual(all.slice(2).map((r) => [JSON.parse(r.body).id, r.headers.authorization]), [['oauth-3', `Bearer ${tokenPrefix}-1`], ['oauth-3', `Bearer ${tokenPrefix}-2`]]);
    assert.equal(tokenServer.requests.length, 2);
    const records = await attemptRecords(system.prefix, workspaceId, webhookId, 3);
    assert.deepEqual(records.map((r) => [r.eventId, r.attemptNumber, r.decision]), [
      ['oauth-1', 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED],
      ['oauth-2', 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED],
      ['oauth-3', 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED],
    ]);
  });

  it('fails the attempt with the token endpoint\'s error, and refuses a token URL on an internal address', async () => {
    const tokenServer = await receiver((_req, res) => {
      res.statusCode = 400;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ error: 'invalid_client', error_description: `client ${clientSecret} unknown` }));
    });
    const endpoint = await receiver();
    const webhookId = await createWebhook(endpoint.url, { auth: { method: { $case: 'oauthClientCredentials', value: { tokenUrl: tokenServer.url, clientId: 'nobody', clientSecret, scope: '', audience: '' } } } });
    await publish(system, contactCreated('oauth-bad', workspaceId));
    const [record] = await attemptRecords(system.prefix, workspaceId, webhookId, 1);
    assert.equal(record!.failureReason, 'oauth token: 400 invalid_client');
    assert.equal(record!.decision, AttemptDecision.ATTEMPT_DECISION_RETRY);
    assert.equal(endpoint.requests.length, 0);

    const message = await expectStatus(
      callUnary(system.subscription, system.subscription.createWebhook, {
        workspaceId, name: uniqueName('hook'), url: endpoint.url, eventTypes: ['contact.created'], headers: {}, rateLimit: 0,
        auth: { method: { $case: 'oauthClientCredentials', value: { tokenUrl: 'https://10.1.2.3/token', clientId: 'a', clientSecret, scope: '', audience: '' } } },
      }, testToken),
      status.INVALID_ARGUMENT,
    );
    assert.match(message, /auth\.oauth_client_credentials\.token_url: points to a private network address/);
  });

  it('presents the client certificate to a mutual-TLS endpoint, which refuses a delivery without one', async () => {
    const serverCert = ca.issueServer('endpoint');
    const client = ca.issueClient('webhooks-dispatcher');
    const seen: { id: string; peer: string }[] = [];
    const server: HttpsServer = createHttpsServer({ cert: serverCert.cert, key: serverCert.key, ca: ca.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ id: JSON.parse(Buffer.concat(chunks).toString('utf8')).id, peer: String((req.socket as TLSSocket).getPeerCertificate().subject?.CN ?? '') });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const withCert = await createWebhook(url, { auth: { method: { $case: 'mutualTls', value: { clientCertificatePem: client.cert.toString(), clientKeyPem: client.key.toString(), caCertificatesPem: '' } } } });
      assert.equal((await getWebhook(withCert)).authKind, EndpointAuthKind.ENDPOINT_AUTH_KIND_MUTUAL_TLS);
      const without = await createWebhook(url);
      await publish(system, contactCreated('mtls-1', workspaceId));
      const [delivered] = await attemptRecords(system.prefix, workspaceId, withCert, 1);
      assert.equal(delivered!.decision, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED);
      const [refused] = await attemptRecords(system.prefix, workspaceId, without, 1);
      assert.equal(refused!.decision, AttemptDecision.ATTEMPT_DECISION_RETRY);
      assert.equal(refused!.statusCode, 0);
      assert.deepEqual(seen, [{ id: 'mtls-1', peer: 'webhooks-dispatcher' }]);
      // Both went through the proxy to the checked address.
      assert.ok(proxy.connects.includes(`127.0.0.1:${(server.address() as AddressInfo).port}`));
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("trusts a webhook's own CA bundle for its endpoint's certificate, on that webhook's connections only", async () => {
    // The customer's own CA: not in the dispatcher's trust (NODE_EXTRA_CA_CERTS holds only the test CA).
    const customerCa = createTestCertificateAuthority('customer private CA');
    const serverCert = customerCa.issueServer('private-endpoint');
    const client = ca.issueClient('webhooks-dispatcher');
    const seen: string[] = [];
    const server: HttpsServer = createHttpsServer({ cert: serverCert.cert, key: serverCert.key, ca: ca.ca, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push(JSON.parse(Buffer.concat(chunks).toString('utf8')).id);
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const identity = { clientCertificatePem: client.cert.toString(), clientKeyPem: client.key.toString(), caCertificatesPem: '' };
      // Before, a webhook could not name a CA: only NODE_EXTRA_CA_CERTS, for every webhook at once.
      const trusting = await createWebhook(url, { auth: { method: { $case: 'mutualTls', value: { ...identity, caCertificatesPem: customerCa.ca.toString() } } } });
      const other = await createWebhook(url, { auth: { method: { $case: 'mutualTls', value: identity } } });
      await publish(system, contactCreated('private-ca-1', workspaceId));
      const [delivered] = await attemptRecords(system.prefix, workspaceId, trusting, 1);
      assert.equal(delivered!.decision, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, delivered!.failureReason);
      const [refused] = await attemptRecords(system.prefix, workspaceId, other, 1);
      assert.equal(refused!.decision, AttemptDecision.ATTEMPT_DECISION_RETRY);
      assert.equal(refused!.statusCode, 0);
      assert.match(refused!.failureReason, /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
      assert.deepEqual(seen, ['private-ca-1']);

      // Checked when saved: a bundle that is no CA is refused with what to give instead.
      const message = await expectStatus(
        callUnary(system.subscription, system.subscription.createWebhook, CreateWebhookRequest.fromPartial({ workspaceId, name: uniqueName('bad-ca'), url, eventTypes: ['contact.created'], auth: { method: { $case: 'mutualTls', value: { ...identity, caCertificatesPem: serverCert.cert.toString() } } } }), testToken),
        status.INVALID_ARGUMENT,
      );
      assert.match(message, /^auth\.mutual_tls\.ca_certificates_pem: the certificate \(CN=private-endpoint\) is not a CA certificate/);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      customerCa.remove();
    }
  });

  it('sent every delivery and token request through the egress proxy', () => {
    for (const r of receivers) assert.ok(r.requests.length === 0 || proxy.connects.includes(new URL(r.url).host), `${r.url} was reached without the proxy`);
  });

  it('never shows a credential in an API answer, a log line or the delivery log', async () => {
    const list = await callUnary(system.subscription, system.subscription.listWebhooks, { workspaceId, pageSize: 100, pageToken: '', status: 0 }, testToken);
    answers.push(list);
    const deliveries = await callUnary(system.deliveryLog, system.deliveryLog.listDeliveries, {
      workspaceId, webhookId: '', eventType: '', status: 0, pageSize: 100, pageToken: '',
    }, testToken);
    const entries = await Promise.all(deliveries.deliveries.map((d) => callUnary(system.deliveryLog, system.deliveryLog.getDelivery, { workspaceId, deliveryId: d.id }, testToken)));
    const authorizationHeaders = entries.flatMap((e) => e.delivery!.attempts.map((a) => a.requestHeaders.authorization)).filter((v) => v !== undefined);
    assert.ok(authorizationHeaders.length > 0 && authorizationHeaders.every((v) => v === '[redacted]'), 'the delivery log shows authorization as [redacted]');
    const text = [
      JSON.stringify(answers),
      JSON.stringify(deliveries),
      JSON.stringify(entries),
      ...[...system.services.values()].flat().map((service) => service.logText()),
    ].join('\n');
    const basicHeader = Buffer.from(`acme:${basicPassword}`).toString('base64');
    for (const secret of [basicPassword, basicHeader, clientSecret, tokenPrefix, 'BEGIN PRIVATE KEY', 'PRIVATE KEY']) {
      assert.equal(text.includes(secret), false, `"${secret}" appears in an answer, a log line or the delivery log`);
    }
  });
});

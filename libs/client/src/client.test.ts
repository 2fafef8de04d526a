// The client's retry rules against real gRPC servers on 127.0.0.1 that fail on purpose, and its TLS
// options against a TLS server with certificates from a CA made in the test.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Metadata, Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { IngestServiceService, SubscriptionServiceService, type IngestServiceServer } from '@webhooks/contracts';
import { createTestCertificateAuthority, type TestCertificateAuthority } from '@webhooks/testing';
import { WebhooksClient } from './index.js';

const unavailable = (): ServiceError => Object.assign(new Error('try again'), { code: status.UNAVAILABLE, details: 'try again', metadata: new Metadata() });

describe('WebhooksClient', () => {
  let server: Server;
  let client: WebhooksClient;
  const calls = { publishEvent: 0, createWebhook: 0, tokens: [] as string[] };

  before(async () => {
    server = new Server();
    const ingest = {
      publishEvent: (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        calls.publishEvent++;
        calls.tokens.push(String(call.metadata.get('authorization')[0]));
        if (calls.publishEvent < 3) return callback(unavailable());
        callback(null, { result: { eventId: 'evt_1', webhookIds: [], duplicate: false } });
      },
    };
    server.addService(IngestServiceService, ingest as unknown as IngestServiceServer);
    server.addService(SubscriptionServiceService, {
      createWebhook: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        calls.createWebhook++;
        callback(unavailable());
      },
    } as never);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    client = new WebhooksClient({ subscriptionAddress: `127.0.0.1:${port}`, ingestAddress: `127.0.0.1:${port}`, token: 'tok-123456', retryBaseMs: 5 });
  });

  after(() => {
    client.close();
    server.forceShutdown();
  });

  it('retries PublishEvent on UNAVAILABLE, since the event id makes it idempotent', async () => {
    const response = await client.publishEvent({ event: undefined });
    assert.equal(response.result!.eventId, 'evt_1');
    assert.equal(calls.publishEvent, 3);
    assert.ok(calls.tokens.every((t) => t === 'Bearer tok-123456'));
  });

  it('does not repeat a call that is not idempotent', async () => {
    await assert.rejects(client.createWebhook({ workspaceId: 'w', name: 'n', url: 'https://x.example', eventTypes: [], headers: {} }), (e: ServiceError) => e.code === status.UNAVAILABLE);
    assert.equal(calls.createWebhook, 1);
  });
});

describe('WebhooksClient over TLS', () => {
  let ca: TestCertificateAuthority;
  let server: Server;
  let address: string;
  const clients: WebhooksClient[] = [];

  before(async () => {
    ca = createTestCertificateAuthority();
    const serverCert = ca.issueServer('ingest');
    server = new Server();
    server.addService(IngestServiceService, {
      publishEvent: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => callback(null, { result: { eventId: 'evt_tls', webhookIds: [], duplicate: false } }),
    } as unknown as IngestServiceServer);
    // Mutual TLS: a client must show a certificate the test CA signed.
    const tls = ServerCredentials.createSsl(ca.ca, [{ cert_chain: serverCert.cert, private_key: serverCert.key }], true);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', tls, (e, p) => (e ? reject(e) : resolve(p))));
    address = `127.0.0.1:${port}`;
  });

  after(() => {
    for (const client of clients) client.close();
    server.forceShutdown();
    ca.remove();
  });

  const client = (options: Partial<ConstructorParameters<typeof WebhooksClient>[0]>) => {
    const c = new WebhooksClient({ subscriptionAddress: address, ingestAddress: address, token: 'tok-123456', maxAttempts: 1, ...options });
    clients.push(c);
    return c;
  };

  it('calls with the CA and a client certificate', async () => {
    const identity = ca.issueClient('core-product');
    const response = await client({ tls: { ca: ca.ca, cert: identity.cert, key: identity.key } }).publishEvent({ event: undefined });
    assert.equal(response.result!.eventId, 'evt_tls');
  });

  it('is refused without a client certificate, and in plaintext', async () => {
    await assert.rejects(client({ tls: { ca: ca.ca } }).publishEvent({ event: undefined }), (e: ServiceError) => e.code === status.UNAVAILABLE);
    await assert.rejects(client({}).publishEvent({ event: undefined }), (e: ServiceError) => e.code === status.UNAVAILABLE);
  });

  it('refuses half a client certificate with a message', () => {
    assert.throws(() => client({ tls: { ca: ca.ca, cert: 'x' } }), /give both cert and key/);
  });
});

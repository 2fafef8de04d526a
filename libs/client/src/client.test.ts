// The client's retry rules against real gRPC servers on 127.0.0.1 that fail on purpose.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Metadata, Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { IngestServiceService, SubscriptionServiceService, type IngestServiceServer } from '@webhooks/contracts';
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

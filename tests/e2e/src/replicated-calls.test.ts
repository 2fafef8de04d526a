// The repeat path of the cluster suite's control calls, forced on purpose: it runs in the cluster only when
// a create's answer is lost, so a fault there must not be the first time it is exercised. Two real gRPC
// servers on 127.0.0.1 stand in for subscription replicas; the first carries out the create and loses its
// answer.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { CreateWebhookRequest, type CreateWebhookResponse, ListWebhooksRequest, type ListWebhooksResponse, SubscriptionServiceClient, SubscriptionServiceService, Webhook } from '@webhooks/contracts';
import { insecure } from '@webhooks/testing';
import { createWebhookOnce, ReplicatedCalls } from './replicated-calls.js';

describe('calls to replicated services', () => {
  const servers: Server[] = [];
  const clients: SubscriptionServiceClient[] = [];
  const created = new Map<string, Webhook>();
  const listRequests: ListWebhooksRequest[] = [];
  let createCalls = 0;

  before(async () => {
    const createWebhook = (call: ServerUnaryCall<CreateWebhookRequest, CreateWebhookResponse>, callback: sendUnaryData<CreateWebhookResponse>) => {
      createCalls++;
      const request = call.request;
      if (created.has(request.name)) return callback({ code: status.ALREADY_EXISTS, details: `a webhook named ${request.name} exists` });
      created.set(request.name, Webhook.fromPartial({ id: `wh_${created.size + 1}`, workspaceId: request.workspaceId, name: request.name, url: request.url }));
      // Carried out, but the answer is lost on its way back.
      callback({ code: status.UNAVAILABLE, details: 'connection reset after the create' });
    };
    const listWebhooks = (call: ServerUnaryCall<ListWebhooksRequest, ListWebhooksResponse>, callback: sendUnaryData<ListWebhooksResponse>) => {
      listRequests.push(call.request);
      callback(null, { webhooks: [...created.values()].filter((w) => w.workspaceId === call.request.workspaceId), nextPageToken: '' });
    };
    for (let n = 0; n < 2; n++) {
      const server = new Server();
      server.addService(SubscriptionServiceService, { createWebhook, listWebhooks } as never);
      const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
      servers.push(server);
      clients.push(new SubscriptionServiceClient(`127.0.0.1:${port}`, insecure));
    }
  });

  after(() => {
    for (const client of clients) client.close();
    for (const server of servers) server.forceShutdown();
  });

  it('settles a create whose answer was lost with the webhook the first try made', async () => {
    const calls = new ReplicatedCalls(clients, { retries: 3, pauseMs: 10, deadlineMs: 2_000 });
    const webhook = await createWebhookOnce(calls, { workspaceId: 'ws_1', name: 'hook 0', url: 'https://example.test/hook', eventTypes: ['contact.created'] });
    assert.equal(webhook.id, 'wh_1');
    assert.equal(createCalls, 2, 'the create was repeated once, on the other replica');
    // The repeat's lookup went over the wire with every field encoded (an undefined status made the
    // encoder throw "invalid int32: undefined" before the request left the client).
    assert.equal(listRequests.length, 1);
    assert.equal(listRequests[0]!.pageSize, 100);
  });

  it('fails a first try that conflicts: only a repeat is settled', async () => {
    const calls = new ReplicatedCalls(clients, { retries: 0, pauseMs: 10, deadlineMs: 2_000 });
    await assert.rejects(
      calls.call((c) => c.createWebhook, CreateWebhookRequest.fromPartial({ workspaceId: 'ws_1', name: 'hook 0' }), () => Promise.resolve({ webhook: undefined, signingSecret: '' })),
      (error: { code?: number }) => error.code === status.ALREADY_EXISTS,
    );
  });
});

// The first slice, end to end: the four services as processes, real PostgreSQL and NATS, a real endpoint.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { Plan } from '@webhooks/contracts';
import { callUnary, expectStatus, HttpReceiver, startSystem, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { contactCreated } from './support.js';

describe('one signed event delivered end to end', () => {
  let system: RunningSystem;
  let receiver: HttpReceiver;
  const workspaceId = uniqueName('ws');

  before(async () => {
    receiver = await HttpReceiver.start();
    system = await startSystem();
  });

  after(async () => {
    await system?.stop();
    await receiver?.close();
  });

  it('delivers exactly one signed POST that standardwebhooks verifies, and nothing for a repeated event id', async () => {
    const upserted = await callUnary(system.subscription, system.subscription.upsertWorkspace, {
      workspace: { id: workspaceId, name: 'Acme', plan: Plan.PLAN_ADVANCED, notificationEmails: ['ops@acme.example'] },
    }, testToken);
    assert.equal(upserted.created, true);

    const created = await callUnary(system.subscription, system.subscription.createWebhook, {
      workspaceId,
      name: 'CRM sync',
      url: receiver.url,
      eventTypes: ['contact.created'],
      headers: {},
    }, testToken);
    assert.match(created.signingSecret, /^whsec_/);
    const webhookId = created.webhook!.id;

    const published = await callUnary(system.ingest, system.ingest.publishEvent, { event: contactCreated('evt_1', workspaceId) }, testToken);
    assert.deepEqual(published.result, { eventId: 'evt_1', webhookIds: [webhookId], duplicate: false });

    const [request] = await receiver.waitForRequests(1);
    assert.equal(request!.method, 'POST');
    assert.equal(request!.headers['content-type'], 'application/json');
    assert.match(String(request!.headers['user-agent']), /^WebhookPlatform-Dispatcher\//);
    const verified = new StandardWebhook(created.signingSecret).verify(request!.body, {
      'webhook-id': String(request!.headers['webhook-id']),
      'webhook-timestamp': String(request!.headers['webhook-timestamp']),
      'webhook-signature': String(request!.headers['webhook-signature']),
    });
    assert.deepEqual(verified, {
      id: 'evt_1',
      type: 'contact.created',
      timestamp: '2026-11-24T10:00:00.000Z',
      workspace_id: workspaceId,
      data: {
        contact: {
          id: 'c_42', first_name: 'Ana', last_name: 'Lima', email: 'ana@example.com', phone: '+5511999999999', language: 'pt',
          country_code: 'BR', tags: ['lead'], created_at: '2026-11-24T10:00:00.000Z',
        },
      },
    });

    // The same event id again: accepted as a duplicate, delivered to nobody.
    const repeated = await callUnary(system.ingest, system.ingest.publishEvent, { event: contactCreated('evt_1', workspaceId) }, testToken);
    assert.equal(repeated.result!.duplicate, true);
    // A later event goes through the same queue, so once it has arrived the duplicate would have too.
    await callUnary(system.ingest, system.ingest.publishEvent, { event: contactCreated('evt_2', workspaceId) }, testToken);
    const requests = await receiver.waitForRequests(2);
    assert.deepEqual(requests.map((r) => JSON.parse(r.body).id), ['evt_1', 'evt_2']);
    assert.equal(receiver.requests.length, 2);
  });

  it('answers bad input with a status and a message that says what to fix', async () => {
    const missingToken = await expectStatus(callUnary(system.subscription, system.subscription.getWorkspace, { workspaceId }), status.UNAUTHENTICATED);
    assert.match(missingToken, /send "authorization: Bearer <token>"/);
    const wrongToken = await expectStatus(callUnary(system.ingest, system.ingest.publishEvent, { event: contactCreated('evt_x', workspaceId) }, 'not-a-valid-token'), status.UNAUTHENTICATED);
    assert.match(wrongToken, /bearer token is not valid/);

    const badUrl = await expectStatus(
      callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: 'bad', url: 'ftp://example.com/hook', eventTypes: ['contact.created'], headers: {} }, testToken),
      status.INVALID_ARGUMENT,
    );
    assert.match(badUrl, /^url: /);

    const unknownType = await expectStatus(
      callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: 'bad', url: receiver.url, eventTypes: ['contact.deleted'], headers: {} }, testToken),
      status.INVALID_ARGUMENT,
    );
    assert.match(unknownType, /event_types: unknown event type "contact.deleted"; known types are/);

    const unknownWorkspace = uniqueName('nows');
    const getMissing = await expectStatus(callUnary(system.subscription, system.subscription.getWorkspace, { workspaceId: unknownWorkspace }, testToken), status.NOT_FOUND);
    assert.match(getMissing, new RegExp(`workspace "${unknownWorkspace}" not found`));
    const publishMissing = await expectStatus(callUnary(system.ingest, system.ingest.publishEvent, { event: contactCreated('evt_y', unknownWorkspace) }, testToken), status.NOT_FOUND);
    assert.match(publishMissing, /UpsertWorkspace first/);

    const mismatched = await expectStatus(
      callUnary(system.ingest, system.ingest.publishEvent, { event: { ...contactCreated('evt_z', workspaceId), type: 'message.incoming' } }, testToken),
      status.INVALID_ARGUMENT,
    );
    assert.match(mismatched, /event.type: is "message.incoming" but the payload set is contactCreated/);

    const tooLarge = await expectStatus(
      callUnary(system.ingest, system.ingest.publishEvent, { event: { ...contactCreated('evt_big', workspaceId), data: { $case: 'commentCreated', value: { contact: undefined, conversationId: 'x', comment: { id: 'k', text: 'x'.repeat(300_000), author: undefined, mentionedUserIds: [], createdAt: undefined } } }, type: '' } }, testToken),
      status.INVALID_ARGUMENT,
    );
    assert.match(tooLarge, /above the limit of 262144 bytes/);
  });
});

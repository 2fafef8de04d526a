// The control plane through its gRPC API: secret rotation seen by a receiver, workspace-scoped tokens and
// the tenancy matrix, and a production start-up without secrets refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { Plan, Webhook } from '@webhooks/contracts';
import { exampleEvent, type EventTypeName } from '@webhooks/domain';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { callUnary, expectStatus, HttpReceiver, ServiceProcess, startSystem, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { contactCreated, publish, workspaceWithWebhook } from './support.js';

const scopedToken = 'scoped-token-0123456789';

describe('control plane over gRPC', () => {
  let system: RunningSystem;
  let receiver: HttpReceiver;
  const scopedWorkspace = uniqueName('wsa');

  before(async () => {
    receiver = await HttpReceiver.start();
    system = await startSystem({ API_TOKENS: `${testToken},${scopedToken}:${scopedWorkspace}` });
  });

  after(async () => {
    await system?.stop();
    await receiver?.close();
  });

  it('signs with both secrets during a rotation, each verifiable by standardwebhooks', async () => {
    const { workspaceId, webhookId, secret: oldSecret } = await workspaceWithWebhook(system, receiver.url);
    const rotated = await callUnary(system.subscription, system.subscription.rotateWebhookSecret, { workspaceId, webhookId }, testToken);
    assert.notEqual(rotated.signingSecret, oldSecret);
    assert.ok(rotated.previousSecretExpireTime!.getTime() > Date.now() + 23 * 3_600_000);
    assert.equal(rotated.webhook!.maskedSecret.slice(0, 10), rotated.signingSecret.slice(0, 10));

    const before = receiver.requests.length;
    await publish(system, contactCreated('rotated_1', workspaceId));
    const [request] = (await receiver.waitForRequests(before + 1)).slice(before);
    const headers = {
      'webhook-id': String(request!.headers['webhook-id']),
      'webhook-timestamp': String(request!.headers['webhook-timestamp']),
      'webhook-signature': String(request!.headers['webhook-signature']),
    };
    assert.equal(headers['webhook-signature'].split(' ').length, 2);
    for (const secret of [rotated.signingSecret, oldSecret]) assert.equal((new StandardWebhook(secret).verify(request!.body, headers) as { id: string }).id, 'rotated_1');
  });

  it('limits a scoped token to its workspaces, and hides one workspace\'s webhooks from another', async () => {
    const other = await workspaceWithWebhook(system, receiver.url);
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: scopedWorkspace, name: 'A', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, scopedToken);
    const own = await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId: scopedWorkspace, name: 'a', url: receiver.url, eventTypes: ['contact.created'], headers: {} }, scopedToken);

    // The scoped token may not touch the other workspace at all.
    const s = system.subscription;
    const denied = await expectStatus(callUnary(s, s.getWorkspace, { workspaceId: other.workspaceId }, scopedToken), status.PERMISSION_DENIED);
    assert.match(denied, new RegExp(`may not act on workspace "${other.workspaceId}"`));
    await expectStatus(callUnary(system.ingest, system.ingest.publishEvent, { event: contactCreated('x1', other.workspaceId) }, scopedToken), status.PERMISSION_DENIED);

    // Through its own workspace, the other workspace's webhook does not exist, for every webhook RPC.
    const foreign = { workspaceId: scopedWorkspace, webhookId: other.webhookId };
    const matrix: [string, () => Promise<unknown>][] = [
      ['GetWebhook', () => callUnary(s, s.getWebhook, foreign, scopedToken)],
      ['UpdateWebhook', () => callUnary(s, s.updateWebhook, { workspaceId: scopedWorkspace, webhook: Webhook.fromPartial({ id: other.webhookId, name: 'stolen' }), updateMask: ['name'], expectedVersion: 0 }, scopedToken)],
      ['DeleteWebhook', () => callUnary(s, s.deleteWebhook, foreign, scopedToken)],
      ['ActivateWebhook', () => callUnary(s, s.activateWebhook, foreign, scopedToken)],
      ['DeactivateWebhook', () => callUnary(s, s.deactivateWebhook, foreign, scopedToken)],
      ['RotateWebhookSecret', () => callUnary(s, s.rotateWebhookSecret, foreign, scopedToken)],
    ];
    for (const [method, call] of matrix) {
      const message = await expectStatus(call(), status.NOT_FOUND).catch((error: Error) => assert.fail(`${method}: ${error.message}`));
      assert.match(message, /not found/, method);
    }
    const listed = await callUnary(s, s.listWebhooks, { workspaceId: scopedWorkspace, pageSize: 0, pageToken: '', status: 0 }, scopedToken);
    assert.deepEqual(listed.webhooks.map((w) => w.id), [own.webhook!.id]);
    // And the other workspace's webhook is untouched.
    const still = await callUnary(s, s.getWebhook, { workspaceId: other.workspaceId, webhookId: other.webhookId }, testToken);
    assert.equal(still.webhook!.name, 'hook');
  });

  it('answers FAILED_PRECONDITION naming the plan when it does not include webhooks', async () => {
    const workspaceId = uniqueName('growth');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'G', plan: Plan.PLAN_GROWTH, notificationEmails: [] } }, testToken);
    const message = await expectStatus(
      callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: 'a', url: receiver.url, eventTypes: ['contact.created'], headers: {} }, testToken),
      status.FAILED_PRECONDITION,
    );
    assert.match(message, /plan GROWTH .* does not include webhooks; they are available on ADVANCED and ENTERPRISE/);
  });

  it('refuses a custom header named __proto__ with INVALID_ARGUMENT, rather than dropping it', async () => {
    const workspaceId = uniqueName('proto');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'P', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    // As a client in any language sends it (a JSON body parsed into a map makes it an own key): on the wire.
    const headers = JSON.parse('{"__proto__": "p", "x-kept": "k"}') as Record<string, string>;
    const message = await expectStatus(
      callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: 'a', url: receiver.url, eventTypes: ['contact.created'], headers }, testToken),
      status.INVALID_ARGUMENT,
    );
    // Before, the decoder dropped the entry and the webhook was created without that header, silently.
    assert.match(message, /"__proto__" cannot be a map key here \(a custom header name or a custom field\): it would be lost/);
    const listed = await callUnary(system.subscription, system.subscription.listWebhooks, { workspaceId, pageSize: 10, pageToken: '', status: 0 }, testToken);
    assert.equal(listed.webhooks.length, 0, 'nothing was created');
  });

  it('answers custom header values redacted, keeps a value sent back redacted, and the endpoint still gets the real one', async () => {
    const s = system.subscription;
    const workspaceId = uniqueName('hdr');
    const apiKey = 'k-3f9a-secret-api-key';
    await callUnary(s, s.upsertWorkspace, { workspace: { id: workspaceId, name: 'H', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    const created = await callUnary(s, s.createWebhook, { workspaceId, name: 'crm', url: receiver.url, eventTypes: ['contact.created'], headers: { 'X-Api-Key': apiKey, 'x-tenant': 'acme' } }, testToken);
    const webhookId = created.webhook!.id;
    const redacted = { 'x-api-key': '[redacted]', 'x-tenant': '[redacted]' };
    // Before, every answer held the values in full.
    assert.deepEqual(created.webhook!.headers, redacted, 'CreateWebhook');
    const got = (await callUnary(s, s.getWebhook, { workspaceId, webhookId }, testToken)).webhook!;
    assert.deepEqual(got.headers, redacted, 'GetWebhook');
    const listed = await callUnary(s, s.listWebhooks, { workspaceId, pageSize: 10, pageToken: '', status: 0 }, testToken);
    assert.deepEqual(listed.webhooks[0]!.headers, redacted, 'ListWebhooks');
    assert.doesNotMatch(JSON.stringify([created, got, listed]), new RegExp(apiKey));

    // Read, change one header, add one, write back: the redacted value is kept, the others are taken.
    const updated = await callUnary(s, s.updateWebhook, { workspaceId, webhook: Webhook.fromPartial({ id: webhookId, headers: { ...got.headers, 'x-tenant': 'beta', 'x-new': 'n' } }), updateMask: ['headers'], expectedVersion: got.version }, testToken);
    assert.deepEqual(updated.webhook!.headers, { 'x-api-key': '[redacted]', 'x-tenant': '[redacted]', 'x-new': '[redacted]' });
    const before = receiver.requests.length;
    await publish(system, contactCreated(uniqueName('hdr_e'), workspaceId));
    const [request] = (await receiver.waitForRequests(before + 1)).slice(before);
    assert.deepEqual([request!.headers['x-api-key'], request!.headers['x-tenant'], request!.headers['x-new']], [apiKey, 'beta', 'n']);

    // The placeholder is no value: refused where there is nothing stored to keep, on an update and a create.
    const refused = await expectStatus(
      callUnary(s, s.updateWebhook, { workspaceId, webhook: Webhook.fromPartial({ id: webhookId, headers: { 'x-api-key': '[redacted]', 'x-other': '[redacted]' } }), updateMask: ['headers'], expectedVersion: 0 }, testToken),
      status.INVALID_ARGUMENT,
    );
    assert.match(refused, /webhook\.headers: "x-other" has the value \[redacted\].*no such header to keep; send its value/);
    const copied = await expectStatus(
      callUnary(s, s.createWebhook, { workspaceId, name: 'copy', url: receiver.url, eventTypes: ['contact.created'], headers: { 'x-api-key': '[redacted]' } }, testToken),
      status.INVALID_ARGUMENT,
    );
    assert.match(copied, /^headers: "x-api-key" has the value \[redacted\]/);
  });

  it('publishes a catalog whose schemas match what endpoints receive for every event type', async () => {
    const { eventTypes } = await callUnary(system.subscription, system.subscription.listEventTypes, {}, testToken);
    assert.equal(eventTypes.length, 9);
    const workspaceId = uniqueName('catalog');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'C', plan: Plan.PLAN_ENTERPRISE, notificationEmails: [] } }, testToken);
    const endpoint = await HttpReceiver.start();
    try {
      await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: 'all', url: endpoint.url, eventTypes: eventTypes.map((t) => t.name), headers: {} }, testToken);
      for (const type of eventTypes) await publish(system, exampleEvent(type.name as EventTypeName, workspaceId));
      const received = await endpoint.waitForRequests(9);
      const ajv = new Ajv2020({ strict: true });
      addFormats.default(ajv);
      for (const [i, type] of eventTypes.entries()) {
        const body = JSON.parse(received[i]!.body) as { type: string; data: unknown };
        assert.equal(body.type, type.name);
        const validate = ajv.compile(JSON.parse(type.dataSchemaJson) as object);
        assert.ok(validate(body.data), `${type.name}: ${ajv.errorsText(validate.errors)}`);
        // The example body in the catalog is what was delivered, but for the workspace and the time.
        const example = JSON.parse(type.exampleBodyJson) as { data: unknown };
        assert.deepEqual(body.data, example.data);
      }
    } finally {
      await endpoint.close();
    }
  });

  it('refuses to start in production without tokens and an encryption key, naming them', async () => {
    await assert.rejects(
      ServiceProcess.start('subscription', { ...system.env, PROFILE: 'production', API_TOKENS: '', SECRET_ENCRYPTION_KEY: '' }),
      (error: Error) => {
        assert.match(error.message, /exited with code 1 before it was ready/);
        assert.match(error.message, /API_TOKENS: is required/);
        assert.match(error.message, /SECRET_ENCRYPTION_KEY: is required/);
        return true;
      },
    );
  });
});

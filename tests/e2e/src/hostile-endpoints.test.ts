// Endpoints that try to reach inside: 34 spellings of internal addresses are refused when a webhook is
// created, and refused again by the dispatcher at delivery time when a permissive control plane let
// them through.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { AttemptDecision, Plan } from '@webhooks/contracts';
import { attemptRecords, callUnary, expectStatus, startSystem, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';
import { contactCreated, publish } from './support.js';

const internalUrls = [
  'http://127.0.0.1/hook', 'http://localhost/hook', 'http://LOCALHOST./hook', 'http://127.1/hook', 'http://2130706433/hook',
  'http://0x7f000001/hook', 'http://0177.0.0.1/hook', 'http://0x7f.0.0.1/hook', 'http://017700000001/hook', 'http://[::1]/hook',
  'http://[0:0:0:0:0:0:0:1]/hook', 'http://[::ffff:127.0.0.1]/hook', 'http://[::ffff:7f00:1]/hook', 'http://10.0.0.1/hook', 'http://172.16.5.4/hook',
  'http://192.168.1.1/hook', 'http://169.254.169.254/latest/meta-data', 'http://[::ffff:a9fe:a9fe]/latest', 'http://metadata.google.internal/computeMetadata', 'http://100.64.0.1/hook',
  'http://0.0.0.0/hook', 'http://[::]/hook', 'http://224.0.0.1/hook', 'http://255.255.255.255/hook', 'http://[fe80::1]/hook',
  'http://[fc00::1]/hook', 'http://[fd00:ec2::254]/latest', 'http://[64:ff9b::7f00:1]/hook', 'http://[2002:7f00:1::]/hook', 'http://foo.localhost/hook',
  'http://intranet/hook', 'http://printer.local/hook', 'http://192.0.2.1/hook', 'http://198.18.0.1/hook',
];

describe('hostile endpoints', () => {
  describe('refused when the webhook is created', () => {
    let system: RunningSystem;
    before(async () => {
      // Only one harmless name is exempt: every internal address must be refused.
      system = await startSystem({ ALLOWED_ENDPOINT_HOSTS: 'hooks.example.invalid', ALLOW_HTTP_ENDPOINTS: 'true' });
    });
    after(async () => {
      await system?.stop();
    });

    it(`refuses all ${internalUrls.length} spellings with INVALID_ARGUMENT naming the url`, async () => {
      const workspaceId = uniqueName('strict');
      await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'S', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
      for (const url of internalUrls) {
        const message = await expectStatus(callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: url, url, eventTypes: ['contact.created'], headers: {} }, testToken), status.INVALID_ARGUMENT).catch((error: Error) => assert.fail(`${url}: ${error.message}`));
        assert.match(message, /^url: url /, url);
      }
    });
  });

  describe('refused again at delivery time', () => {
    let system: RunningSystem;
    before(async () => {
      // A control plane that lets everything through, and a strict dispatcher behind it.
      system = await startSystem({
        ALLOWED_ENDPOINT_HOSTS: '0.0.0.0/0,::/0,localhost,foo.localhost,metadata.google.internal,intranet,printer.local',
        ALLOW_HTTP_ENDPOINTS: 'true', MAX_WEBHOOKS_PER_WORKSPACE: '100', BREAKER_THRESHOLD: '1000', RETRY_DELAYS: '60s,60s,60s', GIVE_UP_AFTER: '5m', ATTEMPT_TIMEOUT: '500ms',
      });
      const [permissive] = system.services.get('dispatcher')!;
      await permissive!.stop();
      await system.startService('dispatcher', { ALLOWED_ENDPOINT_HOSTS: 'hooks.example.invalid' });
    });
    after(async () => {
      await system?.stop();
    });

    it('makes no request to any of them and records why', async () => {
      const workspaceId = uniqueName('lax');
      await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'L', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
      const webhookIds: string[] = [];
      for (const [i, url] of internalUrls.entries()) {
        const created = await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: `h${i}`, url, eventTypes: ['contact.created'], headers: {} }, testToken);
        webhookIds.push(created.webhook!.id);
      }
      await publish(system, contactCreated('probe', workspaceId));
      for (const [i, webhookId] of webhookIds.entries()) {
        const [record] = await attemptRecords(system.prefix, workspaceId, webhookId, 1, 20_000);
        assert.equal(record!.decision, AttemptDecision.ATTEMPT_DECISION_RETRY, internalUrls[i]);
        assert.equal(record!.statusCode, 0, internalUrls[i]);
        assert.match(record!.failureReason, /^url /, `${internalUrls[i]}: ${record!.failureReason}`);
      }
    });
  });
});

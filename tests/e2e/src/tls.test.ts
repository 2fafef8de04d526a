// Transport security end to end: the four services started with TLS and mutual TLS from certificates of
// a CA made in the test. Clients that trust the CA and show a certificate get in; plaintext, a client
// that trusts another CA and one without a certificate do not; a TLS-only replica answers a client with
// the CA alone; the notifier reaches the subscription service over mutual TLS; the CLI connects with --ca;
// the production profile refuses plaintext unless a mesh is said to encrypt.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { credentials, status, type ChannelCredentials } from '@grpc/grpc-js';
import { IngestServiceClient, Plan, SubscriptionServiceClient } from '@webhooks/contracts';
import {
  callUnary, createTestCertificateAuthority, expectStatus, HttpReceiver, startSystem, testToken, uniqueName,
  type IssuedCertificate, type RunningSystem, type TestCertificateAuthority,
} from '@webhooks/testing';
import { contactCreated, publish } from './support.js';

const cliPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'apps', 'cli', 'dist', 'main.js');

describe('gRPC over TLS', () => {
  let ca: TestCertificateAuthority;
  let otherCa: TestCertificateAuthority;
  let client: IssuedCertificate;
  let system: RunningSystem;
  const clients: { close(): void }[] = [];

  before(async () => {
    ca = createTestCertificateAuthority();
    otherCa = createTestCertificateAuthority('a CA nobody trusts');
    // One certificate for every service: they all listen on 127.0.0.1 here.
    const server = ca.issueServer('services', ['localhost'], ['127.0.0.1']);
    client = ca.issueClient('core-product');
    const notifier = ca.issueClient('notifier');
    system = await startSystem(
      {
        GRPC_TLS_CERT_FILE: server.certFile,
        GRPC_TLS_KEY_FILE: server.keyFile,
        GRPC_TLS_CLIENT_CA_FILE: ca.caFile,
        SUBSCRIPTION_TLS_CA_FILE: ca.caFile,
        SUBSCRIPTION_TLS_CERT_FILE: notifier.certFile,
        SUBSCRIPTION_TLS_KEY_FILE: notifier.keyFile,
        BREAKER_THRESHOLD: '2', RETRY_DELAYS: '50ms,50ms,50ms', GIVE_UP_AFTER: '1s',
      },
      credentials.createSsl(ca.ca, client.key, client.cert),
    );
  });

  after(async () => {
    for (const c of clients) c.close();
    await system?.stop();
    ca?.remove();
    otherCa?.remove();
  });

  const subscriptionAddress = () => system.services.get('subscription')![0]!.address();
  const ingestAddress = () => system.services.get('event-ingest')![0]!.address();
  const listEventTypes = (address: string, creds: ChannelCredentials) => {
    const c = new SubscriptionServiceClient(address, creds);
    clients.push(c);
    return callUnary(c, c.listEventTypes, {}, testToken);
  };

  it('says so at start-up', () => {
    for (const [name, processes] of system.services) {
      assert.ok(processes[0]!.logs.some((l) => l.msg === 'gRPC transport' && l.transport === 'mutual TLS'), `${name} did not start with mutual TLS`);
    }
    assert.ok(system.services.get('notifier')![0]!.logs.some((l) => l.msg === 'gRPC client transport' && l.transport === 'mutual TLS'));
  });

  it('answers a client that trusts the CA and shows a certificate it signed', async () => {
    const types = await listEventTypes(subscriptionAddress(), credentials.createSsl(ca.ca, client.key, client.cert));
    assert.ok(types.eventTypes.length > 0);
    const workspaceId = uniqueName('tls');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'TLS Co', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    const result = await publish(system, contactCreated('tls_1', workspaceId));
    assert.equal(result.result!.eventId, 'tls_1');
  });

  it('refuses plaintext, a client that does not trust the CA, and a client without a certificate', async () => {
    await expectStatus(listEventTypes(subscriptionAddress(), credentials.createInsecure()), status.UNAVAILABLE);
    await expectStatus(listEventTypes(subscriptionAddress(), credentials.createSsl(otherCa.ca, client.key, client.cert)), status.UNAVAILABLE);
    await expectStatus(listEventTypes(subscriptionAddress(), credentials.createSsl(ca.ca)), status.UNAVAILABLE);
    const stranger = otherCa.issueClient('stranger');
    await expectStatus(listEventTypes(subscriptionAddress(), credentials.createSsl(ca.ca, stranger.key, stranger.cert)), status.UNAVAILABLE);
    const ingest = new IngestServiceClient(ingestAddress(), credentials.createInsecure());
    clients.push(ingest);
    await expectStatus(callUnary(ingest, ingest.publishEvent, { event: contactCreated('plain_1', 'ws') }, testToken), status.UNAVAILABLE);
  });

  it('without a client CA, answers a client with the CA alone', async () => {
    const tlsOnly = await system.startService('event-ingest', { GRPC_TLS_CLIENT_CA_FILE: '' });
    assert.ok(tlsOnly.logs.some((l) => l.msg === 'gRPC transport' && l.transport === 'TLS'));
    const ingest = new IngestServiceClient(tlsOnly.address(), credentials.createSsl(ca.ca));
    clients.push(ingest);
    // An event for a workspace without webhooks is accepted (and goes nowhere): the call got through.
    const workspaceId = uniqueName('tls');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'TLS only', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    const response = await callUnary(ingest, ingest.publishEvent, { event: contactCreated('tls_only_1', workspaceId) }, testToken);
    assert.equal(response.result!.eventId, 'tls_only_1');
    await expectStatus(callUnary(new IngestServiceClient(tlsOnly.address(), credentials.createInsecure()), ingest.publishEvent, { event: contactCreated('p', 'ws') }, testToken), status.UNAVAILABLE);
  });

  it('lets the notifier ask the subscription service for the workspace over mutual TLS', async () => {
    const failing = await HttpReceiver.start((_req, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    try {
      const workspaceId = uniqueName('ws');
      // No notification addresses: the notifier must read the workspace to know, and logs that it has none.
      await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'Quiet TLS', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
      await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: 'down', url: failing.url, eventTypes: ['contact.created'], headers: {} }, testToken);
      for (const id of ['n1', 'n2']) await publish(system, contactCreated(id, workspaceId));
      const [notifier] = system.services.get('notifier')!;
      await notifier!.waitForLog((l) => l.msg === 'disable notice not sent: the workspace has no notification addresses' && l.workspaceId === workspaceId, 30_000).catch((error: unknown) => {
        // Whether the breaker tripped at all is in the dispatcher's log.
        throw new Error(`${(error as Error).message}\ndispatcher:\n${system.services.get('dispatcher')![0]!.logText().slice(-4000)}`, { cause: error });
      });
      assert.ok(!notifier!.logs.some((l) => l.msg === 'disable notice not sent yet; will retry' && l.workspaceId === workspaceId), 'the notifier failed to reach the subscription service');
    } finally {
      await failing.close();
    }
  });

  it('refuses to start in the production profile without TLS, unless a mesh is said to encrypt', async () => {
    const plaintext = { PROFILE: 'production', GRPC_TLS_CERT_FILE: '', GRPC_TLS_KEY_FILE: '', GRPC_TLS_CLIENT_CA_FILE: '' };
    await assert.rejects(system.startService('event-ingest', plaintext), (error: Error) => {
      assert.match(error.message, /exited with code 1 before it was ready/);
      assert.match(error.message, /PROFILE=production refuses plaintext gRPC.*GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE.*GRPC_PLAINTEXT_BEHIND_MESH=true/);
      return true;
    });
    const behindMesh = await system.startService('event-ingest', { ...plaintext, GRPC_PLAINTEXT_BEHIND_MESH: 'true' });
    assert.ok(behindMesh.logs.some((l) => l.msg === 'gRPC transport' && l.transport === 'plaintext (service mesh)'));
    // The portal, a client of the subscription service, keeps the same rule for its token.
    const portal = { PROFILE: 'production', PORTAL_HTTP_PORT: '0', PORTAL_OPS_PORT: '0', PORTAL_API_TOKEN: testToken, PORTAL_SESSION_KEY: 'k'.repeat(40), SUBSCRIPTION_TLS_CA_FILE: '', SUBSCRIPTION_TLS_CERT_FILE: '', SUBSCRIPTION_TLS_KEY_FILE: '' };
    await assert.rejects(system.startService('portal', portal), (error: Error) => {
      assert.match(error.message, /SUBSCRIPTION_TLS_CA_FILE: PROFILE=production refuses to send the portal's token over plaintext gRPC/);
      return true;
    });
    await system.startService('portal', { ...portal, GRPC_PLAINTEXT_BEHIND_MESH: 'true' });
  });

  function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const env = { PATH: process.env.PATH ?? '', WEBHOOKS_SUBSCRIPTION: subscriptionAddress(), WEBHOOKS_INGEST: ingestAddress(), WEBHOOKS_TOKEN: testToken };
    return new Promise((resolve) => {
      execFile(process.execPath, [cliPath, ...args], { env }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }));
    });
  }

  it('serves the CLI with --ca, --cert and --key, and the CLI says what is wrong otherwise', async () => {
    const listed = await cli('event-types', '--ca', ca.caFile, '--cert', client.certFile, '--key', client.keyFile);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /contact\.created/);
    const plaintext = await cli('event-types');
    assert.equal(plaintext.code, 1);
    assert.match(plaintext.stderr, /UNAVAILABLE/);
    const missing = await cli('event-types', '--ca', '/nonexistent/ca.pem');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--ca: cannot read "\/nonexistent\/ca.pem": ENOENT/);
    const half = await cli('event-types', '--ca', ca.caFile, '--cert', client.certFile);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /--cert and --key go together/);
    const help = await cli('event-types', '--help');
    assert.match(help.stdout, /--ca FILE/);
  });
});

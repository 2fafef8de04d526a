// The control plane against real PostgreSQL and NATS: plan rules, webhook lifecycle, optimistic
// concurrency, secret rotation, tenancy, and the routing table following every change.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { Route } from '@webhooks/contracts';
import { decodeBreakerState, DomainError, encodeBreakerState, SecretBox, type ErrorKind } from '@webhooks/domain';
import { ensureTopology } from '@webhooks/messaging';
import { createLogger } from '@webhooks/telemetry';
import { createTestDatabase, createTestTopology, type TestDatabase, type TestTopology } from '@webhooks/testing';
import { ControlPlane } from '../src/control-plane.js';
import { migrate, openOrm, type Orm } from '../src/persistence/orm.js';
import { RoutePublisher } from '../src/routes.js';
import { failureForgetter } from '../src/trips.js';

async function rejects(promise: Promise<unknown>, kind: ErrorKind, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof DomainError, `expected a DomainError, got ${String(error)}`);
    assert.equal(error.kind, kind);
    assert.match(error.message, message);
    return true;
  });
}

describe('ControlPlane', () => {
  let database: TestDatabase;
  let messaging: TestTopology;
  let orm: Orm;
  let controlPlane: ControlPlane;
  let routes: RoutePublisher;
  const secrets = SecretBox.fromBase64(randomBytes(32).toString('base64'));
  const logger = createLogger('test', 'silent');
  const hook = { name: 'CRM', url: 'https://example.com/hook', eventTypes: ['contact.created'], headers: { 'x-api-key': 'k' } };
  // These machines have no DNS: names resolve through this map, anything else is unresolvable.
  const dns: Record<string, string[]> = {
    '127.0.0.1.nip.io': ['127.0.0.1'],
    '169.254.169.254.nip.io': ['169.254.169.254'],
    'mixed.example.com': ['93.184.216.34', '10.0.0.7'],
    'partner.internal-tools.example': ['10.1.2.3'],
  };
  const lookups: string[] = [];
  const resolveHost = async (host: string): Promise<string[]> => {
    lookups.push(host);
    const addresses = dns[host];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addresses;
  };

  async function kvRoute(workspaceId: string, webhookId: string): Promise<Route | undefined> {
    const { buckets } = await ensureTopology(messaging.nc, messaging.topology);
    const entry = await buckets.routes.get(messaging.topology.keys.webhook(workspaceId, webhookId));
    return entry && entry.operation === 'PUT' ? Route.decode(entry.value) : undefined;
  }

  before(async () => {
    database = await createTestDatabase();
    messaging = await createTestTopology();
    orm = await openOrm(database.url, () => {});
    await migrate(orm);
    const { buckets } = await ensureTopology(messaging.nc, messaging.topology);
    routes = new RoutePublisher(orm, buckets.routes, messaging.topology, logger);
    controlPlane = new ControlPlane(orm, routes, secrets, {
      urlPolicy: { allowHttp: false, allowedHosts: [], maxLength: 2048 },
      maxWebhooksPerWorkspace: 3,
      secretRotationGraceMs: 60_000,
      forgetFailures: async () => {},
      resolveHost,
    });
  });

  after(async () => {
    await orm?.close();
    await messaging?.remove();
    await database?.drop();
  });

  it('creates webhooks only on plans that include them', async () => {
    await controlPlane.upsertWorkspace({ id: 'starter', name: 'S', plan: 'STARTER', notificationEmails: [] });
    await rejects(controlPlane.createWebhook('starter', hook), 'failed-precondition', /plan STARTER of workspace "starter" does not include webhooks/);
    await rejects(controlPlane.createWebhook('nobody', hook), 'not-found', /workspace "nobody" not found/);
    await rejects(controlPlane.upsertWorkspace({ id: 'x', name: 'X', plan: undefined, notificationEmails: [] }), 'invalid-argument', /workspace.plan: choose one of/);
    await rejects(controlPlane.upsertWorkspace({ id: 'x', name: 'X', plan: 'GROWTH', notificationEmails: ['not-an-email'] }), 'invalid-argument', /"not-an-email" is not an email address/);
  });

  it('creates, lists, updates and deletes, with the routing table following each change', async () => {
    await controlPlane.upsertWorkspace({ id: 'acme', name: 'Acme', plan: 'ADVANCED', notificationEmails: ['ops@acme.example'] });
    const { webhook, secret } = await controlPlane.createWebhook('acme', hook);
    assert.match(secret, /^whsec_/);
    assert.ok(!controlPlane.maskedSecret(webhook).includes(secret.slice(10)));
    // At rest the secret is only ciphertext: neither the database nor the routing table holds it in clear.
    const [row] = await orm.em.getConnection().execute<{ secret_sealed: Buffer }[]>('select secret_sealed from webhooks where id = ?', [webhook.id]);
    assert.ok(!row!.secret_sealed.toString('latin1').includes(secret.slice(6, 20)));
    assert.equal(secrets.open(row!.secret_sealed), secret);
    const route = await kvRoute('acme', webhook.id);
    assert.equal(route?.active, true);
    assert.equal(secrets.open(route!.secrets[0]!.encrypted), secret);

    await rejects(controlPlane.createWebhook('acme', hook), 'already-exists', /a webhook named "CRM" in workspace "acme" already exists/);
    await controlPlane.createWebhook('acme', { ...hook, name: 'two' });
    await controlPlane.createWebhook('acme', { ...hook, name: 'three' });
    await rejects(controlPlane.createWebhook('acme', { ...hook, name: 'four' }), 'failed-precondition', /already has 3 webhooks, the limit is 3/);

    const first = await controlPlane.listWebhooks('acme', { pageSize: 2, pageToken: '', status: undefined });
    assert.deepEqual(first.webhooks.map((w) => w.name), ['CRM', 'two']);
    const second = await controlPlane.listWebhooks('acme', { pageSize: 2, pageToken: first.nextPageToken, status: undefined });
    assert.deepEqual(second.webhooks.map((w) => w.name), ['three']);
    assert.equal(second.nextPageToken, '');
    await rejects(controlPlane.listWebhooks('acme', { pageSize: 2, pageToken: '!!!', status: undefined }), 'invalid-argument', /page_token/);

    const updated = await controlPlane.updateWebhook('acme', webhook.id, ['url', 'eventTypes'], { ...hook, url: 'https://example.org/new', eventTypes: ['message.incoming', 'message.outgoing'] }, webhook.version);
    assert.equal(updated.version, webhook.version + 1);
    assert.deepEqual((await kvRoute('acme', webhook.id))?.eventTypes, ['message.incoming', 'message.outgoing']);
    await rejects(controlPlane.updateWebhook('acme', webhook.id, ['name'], { ...hook, name: 'renamed' }, webhook.version), 'aborted', /is at version 2, not 1/);
    await rejects(controlPlane.updateWebhook('acme', webhook.id, ['url'], { ...hook, url: 'https://169.254.169.254/latest' }, 0), 'invalid-argument', /^webhook.url: /);
    await rejects(controlPlane.updateWebhook('acme', webhook.id, ['headers'], { ...hook, headers: { 'Webhook-Id': 'x' } }, 0), 'invalid-argument', /set by the platform/);

    await controlPlane.deleteWebhook('acme', webhook.id);
    assert.equal(await kvRoute('acme', webhook.id), undefined);
    await rejects(controlPlane.getWebhook('acme', webhook.id), 'not-found', /not found/);
  });

  it('keeps another workspace\'s webhooks out of reach', async () => {
    await controlPlane.upsertWorkspace({ id: 'ws_a', name: 'A', plan: 'ENTERPRISE', notificationEmails: [] });
    await controlPlane.upsertWorkspace({ id: 'ws_b', name: 'B', plan: 'ENTERPRISE', notificationEmails: [] });
    const { webhook } = await controlPlane.createWebhook('ws_a', hook);
    const calls: (() => Promise<unknown>)[] = [
      () => controlPlane.getWebhook('ws_b', webhook.id),
      () => controlPlane.updateWebhook('ws_b', webhook.id, ['name'], { ...hook, name: 'stolen' }, 0),
      () => controlPlane.deleteWebhook('ws_b', webhook.id),
      () => controlPlane.activateWebhook('ws_b', webhook.id),
      () => controlPlane.deactivateWebhook('ws_b', webhook.id),
      () => controlPlane.rotateSecret('ws_b', webhook.id),
    ];
    for (const call of calls) await rejects(call(), 'not-found', new RegExp(`webhook "${webhook.id}" in workspace "ws_b" not found`));
    assert.equal((await controlPlane.listWebhooks('ws_b', { pageSize: 0, pageToken: '', status: undefined })).webhooks.length, 0);
    assert.equal((await controlPlane.getWebhook('ws_a', webhook.id)).name, 'CRM');
  });

  it('rotates the secret and keeps the previous one for the grace period', async () => {
    await controlPlane.upsertWorkspace({ id: 'rot', name: 'R', plan: 'ADVANCED', notificationEmails: [] });
    const { webhook, secret: old } = await controlPlane.createWebhook('rot', hook);
    const rotated = await controlPlane.rotateSecret('rot', webhook.id);
    assert.notEqual(rotated.secret, old);
    const route = await kvRoute('rot', webhook.id);
    assert.deepEqual(route!.secrets.map((s) => secrets.open(s.encrypted)), [rotated.secret, old]);
    assert.equal(route!.secrets[0]!.expireTime, undefined);
    assert.equal(route!.secrets[1]!.expireTime!.getTime(), rotated.previousExpiresAt.getTime());
  });

  it('disables webhooks on a downgrade, keeps their configuration, and lets them be activated after an upgrade', async () => {
    await controlPlane.upsertWorkspace({ id: 'down', name: 'D', plan: 'ADVANCED', notificationEmails: [] });
    const { webhook } = await controlPlane.createWebhook('down', hook);
    await controlPlane.upsertWorkspace({ id: 'down', name: 'D', plan: 'GROWTH', notificationEmails: [] });
    const disabled = await controlPlane.getWebhook('down', webhook.id);
    assert.equal(disabled.status, 'disabled');
    assert.equal(disabled.disabledReason, 'plan');
    assert.equal(disabled.url, hook.url);
    assert.equal((await kvRoute('down', webhook.id))?.active, false);
    await rejects(controlPlane.activateWebhook('down', webhook.id), 'failed-precondition', /plan GROWTH/);

    await controlPlane.upsertWorkspace({ id: 'down', name: 'D', plan: 'ENTERPRISE', notificationEmails: [] });
    assert.equal((await controlPlane.getWebhook('down', webhook.id)).status, 'disabled');
    const active = await controlPlane.activateWebhook('down', webhook.id);
    assert.equal(active.status, 'active');
    assert.equal(active.disabledReason, null);
    assert.equal((await kvRoute('down', webhook.id))?.active, true);

    const manual = await controlPlane.deactivateWebhook('down', webhook.id);
    assert.equal(manual.disabledReason, 'manual');
    assert.equal((await kvRoute('down', webhook.id))?.active, false);
  });

  it('forgets an activated webhook\'s failures in the shared breaker window, keeping the others', async () => {
    const { buckets } = await ensureTopology(messaging.nc, messaging.topology);
    const key = messaging.topology.keys.workspace('acme');
    const state = { failures: [{ webhookId: 'wh_a', at: 1, reason: 'x' }, { webhookId: 'wh_b', at: 2, reason: 'y' }, { webhookId: 'wh_a', at: 3, reason: 'z' }], pendingTrip: 'abc' };
    await buckets.breaker.put(key, encodeBreakerState(state));
    await failureForgetter(buckets.breaker, messaging.topology)('acme', 'wh_a');
    const after = decodeBreakerState((await buckets.breaker.get(key))!.value);
    assert.deepEqual(after, { failures: [{ webhookId: 'wh_b', at: 2, reason: 'y' }], pendingTrip: 'abc' });
  });

  it('repairs a routing table that drifted from PostgreSQL', async () => {
    await controlPlane.upsertWorkspace({ id: 'drift', name: 'D', plan: 'ADVANCED', notificationEmails: [] });
    const { webhook } = await controlPlane.createWebhook('drift', hook);
    const { buckets } = await ensureTopology(messaging.nc, messaging.topology);
    // A crash between the commit and the bucket write, a stale value, and a key PostgreSQL never had.
    await buckets.routes.delete(messaging.topology.keys.webhook('drift', webhook.id));
    await buckets.routes.put(messaging.topology.keys.workspace('drift'), new Uint8Array([1, 2, 3]));
    await buckets.routes.put(messaging.topology.keys.webhook('drift', 'wh_ghost'), new Uint8Array([1]));

    const repaired = await controlPlane.reconcileRoutes();
    assert.deepEqual({ written: repaired.written, deleted: repaired.deleted }, { written: 2, deleted: 1 });
    assert.equal((await kvRoute('drift', webhook.id))?.webhookId, webhook.id);
    assert.equal(await kvRoute('drift', 'wh_ghost'), undefined);
    const again = await controlPlane.reconcileRoutes();
    assert.deepEqual({ written: again.written, deleted: again.deleted }, { written: 0, deleted: 0 });
  });

  it('refuses an endpoint whose name resolves only to internal addresses, and accepts the rest', async () => {
    await controlPlane.upsertWorkspace({ id: 'dns', name: 'DNS', plan: 'ENTERPRISE', notificationEmails: [] });
    await rejects(controlPlane.createWebhook('dns', { ...hook, url: 'https://127.0.0.1.nip.io/' }), 'invalid-argument', /^url: host "127\.0\.0\.1\.nip\.io" resolved to a loopback address \(127\.0\.0\.1\)$/);
    await rejects(controlPlane.createWebhook('dns', { ...hook, url: 'https://169.254.169.254.nip.io/latest/meta-data' }), 'invalid-argument', /^url: host "169\.254\.169\.254\.nip\.io" resolved to a cloud metadata service address \(169\.254\.169\.254\)$/);
    // One public address is enough: the dispatcher connects only to an address that passes at connect time.
    const { webhook } = await controlPlane.createWebhook('dns', { ...hook, name: 'mixed', url: 'https://mixed.example.com/hook' });
    // A name that does not resolve now may later; the connect-time check stays the authority.
    await controlPlane.createWebhook('dns', { ...hook, name: 'unresolvable', url: 'https://not-yet.example.net/hook' });
    await rejects(controlPlane.updateWebhook('dns', webhook.id, ['url'], { ...hook, url: 'https://127.0.0.1.nip.io/' }, 0), 'invalid-argument', /^webhook\.url: host "127\.0\.0\.1\.nip\.io" resolved to a loopback address/);
    assert.equal((await controlPlane.getWebhook('dns', webhook.id)).url, 'https://mixed.example.com/hook');

    // An allow-listed name and an IP literal need no lookup; a lookup that hangs counts as unresolvable.
    const hung: string[] = [];
    const allowing = new ControlPlane(orm, routes, secrets, {
      urlPolicy: { allowHttp: false, allowedHosts: ['partner.internal-tools.example'], maxLength: 2048 },
      maxWebhooksPerWorkspace: 5,
      secretRotationGraceMs: 60_000,
      forgetFailures: async () => {},
      resolveHost: (host) => {
        hung.push(host);
        return new Promise<string[]>(() => {});
      },
      hostLookupTimeoutMs: 50,
    });
    await allowing.upsertWorkspace({ id: 'dns_allow', name: 'A', plan: 'ENTERPRISE', notificationEmails: [] });
    await allowing.createWebhook('dns_allow', { ...hook, name: 'partner', url: 'https://partner.internal-tools.example/hook' });
    await allowing.createWebhook('dns_allow', { ...hook, name: 'literal', url: 'https://93.184.216.34/hook' });
    assert.deepEqual(hung, []);
    await allowing.createWebhook('dns_allow', { ...hook, name: 'slow', url: 'https://slow.example.net/hook' });
    assert.deepEqual(hung, ['slow.example.net']);
  });

  it('leaves alone a webhook changed after a trip was decided; a trip without a route version disables as before', async () => {
    await controlPlane.upsertWorkspace({ id: 'late', name: 'L', plan: 'ADVANCED', notificationEmails: [] });
    const { webhook } = await controlPlane.createWebhook('late', hook);
    const trip = {
      tripId: 'trip_late', workspaceId: 'late', windowSeconds: 1800, failureCount: 30, tripTime: new Date(),
      webhooks: [{ webhookId: webhook.id, lastError: 'HTTP 500', routeVersion: webhook.version }],
    };
    assert.deepEqual((await controlPlane.applyTrip(trip)).map((w) => w.id), [webhook.id]);
    const activated = await controlPlane.activateWebhook('late', webhook.id);
    assert.equal(activated.version, webhook.version + 2);

    // The same trip again (redelivered, or a second one decided on the same view) comes too late.
    assert.deepEqual(await controlPlane.applyTrip(trip), []);
    assert.equal((await controlPlane.getWebhook('late', webhook.id)).status, 'active');
    assert.equal((await kvRoute('late', webhook.id))?.active, true);

    // An older dispatcher sends no route version: the trip applies as it always did.
    const legacy = { ...trip, tripId: 'trip_legacy', webhooks: [{ ...trip.webhooks[0]!, routeVersion: 0 }] };
    assert.deepEqual((await controlPlane.applyTrip(legacy)).map((w) => w.id), [webhook.id]);
    assert.equal((await controlPlane.getWebhook('late', webhook.id)).disabledReason, 'failure_threshold');
    assert.equal((await kvRoute('late', webhook.id))?.active, false);
  });
  it('serialises activate, deactivate and delete with a concurrent change of the same row instead of failing them', async () => {
    await controlPlane.upsertWorkspace({ id: 'race', name: 'R', plan: 'ADVANCED', notificationEmails: [] });
    const made = await Promise.all(['a', 'd', 'x'].map((name) => controlPlane.createWebhook('race', { ...hook, name })));
    const [toActivate, toDeactivate, toDelete] = made.map((m) => m.webhook);
    await controlPlane.deactivateWebhook('race', toActivate!.id);
    // Another writer (a breaker trip, another replica) holds each row and changes it while the call runs.
    const holder = new pg.Client({ connectionString: database.url });
    await holder.connect();
    try {
      for (const [webhook, call] of [
        [toActivate!, () => controlPlane.activateWebhook('race', toActivate!.id)],
        [toDeactivate!, () => controlPlane.deactivateWebhook('race', toDeactivate!.id)],
        [toDelete!, () => controlPlane.deleteWebhook('race', toDelete!.id)],
      ] as const) {
        await holder.query('BEGIN');
        await holder.query('SELECT 1 FROM webhooks WHERE id = $1 FOR UPDATE', [webhook.id]);
        const result = (call as () => Promise<unknown>)().then(() => 'done', (error: unknown) => error);
        // The call has read the row (or waits for the lock) before the other writer commits its change.
        await new Promise((resolve) => setTimeout(resolve, 300));
        await holder.query("UPDATE webhooks SET version = version + 1, last_error = 'concurrent change' WHERE id = $1", [webhook.id]);
        await holder.query('COMMIT');
        assert.equal(await result, 'done', `the call on ${webhook.name} completed`);
      }
    } finally {
      await holder.end();
    }
    assert.equal((await controlPlane.getWebhook('race', toActivate!.id)).status, 'active');
    assert.equal((await controlPlane.getWebhook('race', toDeactivate!.id)).status, 'disabled');
    await rejects(controlPlane.getWebhook('race', toDelete!.id), 'not-found', /webhook/);
  });
});

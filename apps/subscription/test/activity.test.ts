// Webhook activity against real PostgreSQL and NATS: a record per change, in the change's transaction,
// with who made it; a breaker trip recorded once by two replicas; ids in commit order however the
// writers interleave; tenancy; and the feed waking a watch by notification.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SecretBox } from '@webhooks/domain';
import { ensureTopology } from '@webhooks/messaging';
import { createLogger } from '@webhooks/telemetry';
import { createTestDatabase, createTestTopology, type TestDatabase, type TestTopology } from '@webhooks/testing';
import { activityAfter, cursorOf, idOfCursor, listActivity, recordActivity, type ActivityRecord, type Actor } from '../src/activity/activity-log.js';
import { ActivityFeed } from '../src/activity/feed.js';
import { ControlPlane } from '../src/control-plane.js';
import { migrate, openOrm, type Orm } from '../src/persistence/orm.js';
import { RoutePublisher } from '../src/routes.js';

describe('webhook activity', () => {
  let database: TestDatabase;
  let messaging: TestTopology;
  let orm: Orm;
  let replicas: ControlPlane[];
  const logger = createLogger('test', 'silent');
  const admin: Actor = { kind: 'portal_session', name: '', tokenName: 'portal' };
  const crm: Actor = { kind: 'api_token', name: 'crm-sync', tokenName: 'crm-sync' };
  const hook = { name: 'CRM', url: 'https://93.184.216.34/hook', eventTypes: ['contact.created'], headers: {} };

  before(async () => {
    database = await createTestDatabase();
    messaging = await createTestTopology();
    orm = await openOrm(database.url, () => {});
    await migrate(orm);
    const { buckets } = await ensureTopology(messaging.nc, messaging.topology);
    const secrets = SecretBox.fromBase64(randomBytes(32).toString('base64'));
    // Two control planes on one database: two subscription replicas.
    replicas = [0, 1].map(() => new ControlPlane(orm, new RoutePublisher(orm, buckets.routes, messaging.topology, logger), secrets, {
      urlPolicy: { allowHttp: false, allowedHosts: [], maxLength: 2048 },
      maxWebhooksPerWorkspace: 20,
      secretRotationGraceMs: 60_000,
      forgetFailures: async () => {},
      resolveHost: async () => ['93.184.216.34'],
    }));
  });

  after(async () => {
    await orm?.close();
    await messaging?.remove();
    await database?.drop();
  });

  const history = async (workspaceId: string, webhookId?: string) => (await listActivity(orm.em.fork(), workspaceId, { webhookId }, 100, '')).records;

  it('records every change with who made it, newest first, and keeps a deleted webhook\'s history', async () => {
    const [cp] = replicas;
    await cp!.upsertWorkspace({ id: 'act', name: 'Act', plan: 'ADVANCED', notificationEmails: [] }, crm);
    const { webhook } = await cp!.createWebhook('act', hook, crm);
    await cp!.updateWebhook('act', webhook.id, ['name', 'url', 'eventTypes'], { ...hook, name: 'CRM 2', url: 'https://93.184.216.34/v2', eventTypes: ['contact.updated'] }, 0, admin);
    await cp!.updateWebhook('act', webhook.id, ['auth'], { ...hook, auth: { method: { $case: 'basic', value: { username: 'u', password: 'p' } } } }, 0, admin);
    await cp!.rotateSecret('act', webhook.id, crm);
    await cp!.deactivateWebhook('act', webhook.id, admin);
    await cp!.deactivateWebhook('act', webhook.id, admin); // no change: no record
    await cp!.activateWebhook('act', webhook.id, { kind: 'operator', name: 'alice', tokenName: 'portal' });
    await cp!.activateWebhook('act', webhook.id, admin); // no change: no record
    await cp!.upsertWorkspace({ id: 'act', name: 'Act', plan: 'GROWTH', notificationEmails: [] }, crm);
    await cp!.deleteWebhook('act', webhook.id, crm);

    const records = await history('act');
    assert.deepEqual(
      records.reverse().map((r) => [r.kind, r.actor.kind, r.actor.name, r.webhookName, r.details]),
      [
        ['created', 'api_token', 'crm-sync', 'CRM', {}],
        ['edited', 'portal_session', '', 'CRM 2', { fields: ['name', 'url', 'event_types'] }],
        ['auth_changed', 'portal_session', '', 'CRM 2', { authKind: 'basic' }],
        ['secret_rotated', 'api_token', 'crm-sync', 'CRM 2', {}],
        ['deactivated', 'portal_session', '', 'CRM 2', {}],
        ['activated', 'operator', 'alice', 'CRM 2', {}],
        ['disabled_by_plan', 'system', 'plan', 'CRM 2', { plan: 'GROWTH' }],
        ['deleted', 'api_token', 'crm-sync', 'CRM 2', {}],
      ],
    );
    assert.ok(records.every((r) => r.webhookId === webhook.id && r.workspaceId === 'act'));
    // Pages of two, newest first, cover the same records once.
    const pages: ActivityRecord[] = [];
    let token = '';
    do {
      const page = await listActivity(orm.em.fork(), 'act', {}, 2, token);
      pages.push(...page.records);
      token = page.nextPageToken;
    } while (token);
    assert.deepEqual(pages.map((r) => r.id), [...records].reverse().map((r) => r.id));
  });

  it('records a breaker trip once when two replicas apply it at the same moment', async () => {
    await replicas[0]!.upsertWorkspace({ id: 'trip', name: 'Trip', plan: 'ADVANCED', notificationEmails: [] });
    const { webhook } = await replicas[0]!.createWebhook('trip', hook);
    const trip = { tripId: 't1', workspaceId: 'trip', windowSeconds: 1800, failureCount: 31, tripTime: new Date(), webhooks: [{ webhookId: webhook.id, lastError: 'status 503', routeVersion: 0 }] };
    const applied = await Promise.all(replicas.map((cp) => cp.applyTrip(trip)));
    assert.deepEqual(applied.map((disabled) => disabled.length).sort(), [0, 1], 'one replica turned it off');
    const trips = (await history('trip', webhook.id)).filter((r) => r.kind === 'disabled_by_breaker');
    assert.equal(trips.length, 1);
    assert.deepEqual([trips[0]!.actor, trips[0]!.details], [{ kind: 'system', name: 'breaker', tokenName: '' }, { failureCount: 31, windowSeconds: 1800, lastError: 'status 503' }]);
  });

  it('hands out ids in commit order: a record written after a slower transaction took its id waits for it', async () => {
    const seen: string[] = [];
    let cursor = (await activityAfter(orm.em.fork(), 'order', '0', 1000)).at(-1)?.id ?? '0';
    const entry = (name: string) => ({ workspaceId: 'order', webhookId: 'wh_order', webhookName: name, kind: 'edited' as const, actor: crm, details: { fields: ['name'] } });
    // A takes its id and holds its transaction open for 600 ms; B writes 100 ms later and commits at once.
    const slow = orm.em.fork().transactional(async (em) => {
      await recordActivity(em, [entry('slow')]);
      await em.execute('SELECT pg_sleep(0.6)');
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const fast = orm.em.fork().transactional((em) => recordActivity(em, [entry('fast')]));
    // A reader following the cursor the whole time, as a watch does.
    const reader = (async () => {
      const until = Date.now() + 1_500;
      while (Date.now() < until) {
        for (const record of await activityAfter(orm.em.fork(), 'order', cursor, 100)) {
          seen.push(record.webhookName);
          cursor = record.id;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await Promise.all([slow, fast, reader]);
    // Without the writers' lock, "fast" committed first with the larger id, the reader moved past the
    // smaller one, and "slow" was never seen.
    assert.deepEqual(seen, ['slow', 'fast']);
  });

  it('orders by the id as a number, past 9 and 99 (the id leaves the database as text)', async () => {
    for (let i = 0; i < 12; i++) await orm.em.fork().transactional((em) => recordActivity(em, [{ workspaceId: 'many', webhookId: 'wh_many', webhookName: `n${i}`, kind: 'edited', actor: crm, details: { fields: ['name'] } }]));
    const names = Array.from({ length: 12 }, (_, i) => `n${i}`);
    assert.deepEqual((await activityAfter(orm.em.fork(), 'many', '0', 100)).map((r) => r.webhookName), names);
    assert.deepEqual((await history('many')).map((r) => r.webhookName), [...names].reverse());
    const all = await activityAfter(orm.em.fork(), undefined, '0', 1000);
    assert.deepEqual(all.map((r) => BigInt(r.id)), all.map((r) => BigInt(r.id)).sort((a, b) => (a < b ? -1 : 1)));
  });

  it('shows a workspace nothing of another\'s', async () => {
    await replicas[0]!.upsertWorkspace({ id: 'other', name: 'Other', plan: 'ADVANCED', notificationEmails: [] });
    await replicas[0]!.createWebhook('other', { ...hook, name: 'theirs' });
    assert.ok((await history('act')).every((r) => r.workspaceId === 'act'));
    assert.deepEqual((await history('other')).map((r) => [r.workspaceId, r.kind, r.webhookName]), [['other', 'created', 'theirs']]);
    assert.ok((await activityAfter(orm.em.fork(), 'other', '0', 100)).every((r) => r.workspaceId === 'other'));
  });

  it('refuses a cursor that is not one, saying what to pass', () => {
    assert.equal(idOfCursor(cursorOf({ id: '42' })), '42');
    assert.equal(idOfCursor(''), '0');
    assert.throws(() => idOfCursor('bm9wZQ'), /cursor: is not a cursor from an activity record; pass a record's cursor, or none to start from the oldest record kept/);
  });

  it('wakes a watch by notification (not by polling), sends its workspace only, and ends every watch on stop', async () => {
    // A poll interval far longer than the test: only a notification can deliver in time.
    const feed = new ActivityFeed(orm, logger, 600_000);
    await feed.start();
    const got: string[] = [];
    const abort = new AbortController();
    const start = (await activityAfter(orm.em.fork(), 'feed', '0', 1000)).at(-1)?.id ?? '0';
    let arrived = () => {};
    const watching = feed.watch('feed', start, async (record) => {
      got.push(`${record.workspaceId}:${record.webhookName}`);
      arrived();
    }, abort.signal);
    const entry = (workspaceId: string, name: string) => ({ workspaceId, webhookId: 'wh_feed', webhookName: name, kind: 'created' as const, actor: crm });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const next = new Promise<void>((resolve) => (arrived = resolve));
    await orm.em.fork().transactional((em) => recordActivity(em, [entry('elsewhere', 'x')]));
    await orm.em.fork().transactional((em) => recordActivity(em, [entry('feed', 'one')]));
    await Promise.race([next, new Promise((_, reject) => setTimeout(() => reject(new Error('no record within 5 s: the notification did not wake the watch')), 5_000))]);
    assert.deepEqual(got, ['feed:one']);
    feed.stop();
    assert.equal(await watching, true, 'the watch ended because the feed stopped');
    abort.abort();
  });
});

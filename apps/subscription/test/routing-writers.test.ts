// Two control-plane replicas writing the routing table (KV wh_routes) at the same time as a reconcile
// pass: the races are forced (a pass paused between PostgreSQL and the bucket, a write held at a gate),
// against the real PostgreSQL and NATS KV. Whatever the order, the bucket ends equal to PostgreSQL.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Route, WorkspaceRoute } from '@webhooks/contracts';
import { SecretBox } from '@webhooks/domain';
import { connectNats, ensureTopology, jetstreamManager, type KV, type NatsConnection } from '@webhooks/messaging';
import { createLogger } from '@webhooks/telemetry';
import { createTestDatabase, createTestTopology, testEnvironment, type TestDatabase, type TestTopology } from '@webhooks/testing';
import { ControlPlane } from '../src/control-plane.js';
import { migrate, openOrm, type Orm } from '../src/persistence/orm.js';
import { WebhookEntity, WorkspaceEntity, type Webhook } from '../src/persistence/entities.js';
import { routeOf, RoutePublisher, workspaceRouteOf } from '../src/routes.js';

const logger = createLogger('test', 'silent');
const secrets = SecretBox.fromBase64(randomBytes(32).toString('base64'));
const hook = { name: 'CRM', url: 'https://example.com/hook', eventTypes: ['contact.created'], headers: {} };

/** A promise with its resolve function, for holding one side of a race at a chosen point. */
function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Holds every webhook write until the test opens the gate: a replica whose write is slow to land. */
class GatedRoutePublisher extends RoutePublisher {
  gate: { promise: Promise<void>; open: () => void } | undefined;
  readonly arrived = latch();

  override async putWebhook(webhook: Webhook, workspaceId: string): Promise<void> {
    if (this.gate) {
      this.arrived.open();
      await this.gate.promise;
    }
    return super.putWebhook(webhook, workspaceId);
  }
}

interface Replica {
  orm: Orm;
  nc: NatsConnection;
  routes: GatedRoutePublisher;
  controlPlane: ControlPlane;
}

describe('routing table writers across two replicas', () => {
  let database: TestDatabase;
  let messaging: TestTopology;
  let bucket: KV;
  let a: Replica;
  let b: Replica;
  /** Replica A's pause between deciding a key's write and making it, when a test sets one. */
  let holdWriteOf: ((key: string) => Promise<void>) | undefined;

  async function replica(name: string): Promise<Replica> {
    const orm = await openOrm(database.url, () => {});
    const nc = await connectNats(testEnvironment.natsUrl, name);
    const { buckets } = await ensureTopology(nc, messaging.topology);
    const options = name === 'replica-a' ? { pageSize: 2, beforeWrite: (key: string) => holdWriteOf?.(key) ?? Promise.resolve() } : { pageSize: 2 };
    const routes = new GatedRoutePublisher(orm, buckets.routes, messaging.topology, logger, options);
    const controlPlane = new ControlPlane(orm, routes, secrets, {
      urlPolicy: { allowHttp: false, allowedHosts: [], maxLength: 2048 },
      maxWebhooksPerWorkspace: 20,
      secretRotationGraceMs: 60_000,
      forgetFailures: async () => {},
      resolveHost: async () => ['93.184.216.34'],
    });
    return { orm, nc, routes, controlPlane };
  }

  /** Every live key of the bucket, decoded (JSON form, so byte arrays compare by content). */
  async function bucketContents(): Promise<Map<string, unknown>> {
    const contents = new Map<string, unknown>();
    for await (const key of await bucket.keys()) {
      const entry = await bucket.get(key);
      if (!entry || entry.operation !== 'PUT') continue;
      contents.set(key, key.startsWith('ws.') ? WorkspaceRoute.toJSON(WorkspaceRoute.decode(entry.value)) : Route.toJSON(Route.decode(entry.value)));
    }
    return contents;
  }

  /** What PostgreSQL says the bucket must hold now. */
  async function postgresContents(kind: 'ws.' | 'wh.'): Promise<Map<string, unknown>> {
    const em = a.orm.em.fork();
    const expected = new Map<string, unknown>();
    if (kind === 'ws.') {
      for (const workspace of await em.find(WorkspaceEntity, {})) {
        expected.set(messaging.topology.keys.workspace(workspace.id), WorkspaceRoute.toJSON(workspaceRouteOf(workspace)));
      }
    } else {
      for (const webhook of await em.find(WebhookEntity, {})) {
        expected.set(messaging.topology.keys.webhook(webhook.workspace.id, webhook.id), Route.toJSON(routeOf(webhook, webhook.workspace.id)));
      }
    }
    return expected;
  }

  async function assertBucketEqualsPostgres(): Promise<void> {
    const inBucket = await bucketContents();
    const of = (prefix: string) => new Map([...inBucket].filter(([key]) => key.startsWith(prefix)));
    assert.deepEqual(of('wh.'), await postgresContents('wh.'), 'webhook routes differ from PostgreSQL');
    assert.deepEqual(of('ws.'), await postgresContents('ws.'), 'workspace routes differ from PostgreSQL');
    // The versions are the rows' own, read without the ORM.
    const rows = await a.orm.em.getConnection().execute<{ key: string; version: number }[]>(
      `select 'ws.' || id as key, version from workspaces union all select 'wh.' || workspace_id || '.' || id, version from webhooks`,
    );
    assert.equal(rows.length, inBucket.size);
    for (const row of rows) assert.equal(Number((inBucket.get(row.key) as { version: string | number }).version), row.version, `version of ${row.key}`);
  }

  before(async () => {
    database = await createTestDatabase();
    messaging = await createTestTopology();
    ({ buckets: { routes: bucket } } = await ensureTopology(messaging.nc, messaging.topology));
    a = await replica('replica-a');
    await migrate(a.orm);
    b = await replica('replica-b');
  });

  after(async () => {
    for (const r of [a, b]) {
      await r?.orm.close();
      await r?.nc.close();
    }
    await messaging?.remove();
    await database?.drop();
  });

  it('a reconcile pass paused between PostgreSQL and the bucket undoes nothing the other replica did meanwhile', async () => {
    const cp = b.controlPlane;
    await cp.upsertWorkspace({ id: 'race', name: 'Race', plan: 'ADVANCED', notificationEmails: [] });
    await cp.upsertWorkspace({ id: 'upgraded', name: 'Up', plan: 'ADVANCED', notificationEmails: [] });
    const toDisable = (await cp.createWebhook('race', { ...hook, name: 'to-disable' })).webhook;
    const toDelete = (await cp.createWebhook('race', { ...hook, name: 'to-delete' })).webhook;
    const toActivate = (await cp.createWebhook('race', { ...hook, name: 'to-activate' })).webhook;
    const toTrip = (await cp.createWebhook('race', { ...hook, name: 'to-trip' })).webhook;
    await cp.deactivateWebhook('race', toActivate.id);

    const paused = { workspaces: latch(), webhooks: latch() };
    const resume = { workspaces: latch(), webhooks: latch() };
    const seen = new Set<string>();
    const pass = a.routes.reconcile({
      afterPageRead: async (kind) => {
        if (seen.has(kind)) return;
        seen.add(kind);
        paused[kind].open();
        await resume[kind].promise;
      },
    });

    // While replica A holds its first page of workspaces: a new workspace, and a plan change.
    await paused.workspaces.promise;
    await cp.upsertWorkspace({ id: 'created_during_pass', name: 'New', plan: 'ENTERPRISE', notificationEmails: [] });
    await cp.upsertWorkspace({ id: 'upgraded', name: 'Up', plan: 'ENTERPRISE', notificationEmails: [] });
    resume.workspaces.open();

    // While it holds its first page of webhooks: create, disable, delete, activate, and a breaker trip.
    await paused.webhooks.promise;
    const created = (await cp.createWebhook('race', { ...hook, name: 'created-during-pass' })).webhook;
    await cp.deactivateWebhook('race', toDisable.id);
    await cp.deleteWebhook('race', toDelete.id);
    await cp.activateWebhook('race', toActivate.id);
    await cp.applyTrip({
      tripId: 'trip_1', workspaceId: 'race', windowSeconds: 1800, failureCount: 30, tripTime: new Date(),
      webhooks: [{ webhookId: toTrip.id, lastError: 'HTTP 500', routeVersion: toTrip.version }],
    });
    resume.webhooks.open();
    await pass;

    await assertBucketEqualsPostgres();
    const route = async (id: string) => {
      const entry = await bucket.get(messaging.topology.keys.webhook('race', id));
      return entry?.operation === 'PUT' ? Route.decode(entry.value) : undefined;
    };
    assert.equal((await route(created.id))?.active, true, 'a webhook created during the pass is routed');
    assert.equal((await route(toDisable.id))?.active, false, 'a webhook disabled during the pass stays disabled');
    assert.equal(await route(toDelete.id), undefined, 'a webhook deleted during the pass stays deleted');
    assert.equal((await route(toActivate.id))?.active, true, 'a webhook activated during the pass stays active');
    assert.equal((await route(toTrip.id))?.active, false, 'a tripped webhook stays disabled');
  });

  it('refuses to write an older version over a newer one: a breaker trip\'s disable that lands after a later activation', async () => {
    await b.controlPlane.upsertWorkspace({ id: 'late_trip', name: 'Late', plan: 'ADVANCED', notificationEmails: [] });
    const { webhook } = await b.controlPlane.createWebhook('late_trip', hook);

    // Replica A applies the trip (PostgreSQL: version 2, disabled); its routing-table write is slow.
    a.routes.gate = latch();
    const trip = a.controlPlane.applyTrip({
      tripId: 'trip_2', workspaceId: 'late_trip', windowSeconds: 1800, failureCount: 30, tripTime: new Date(),
      webhooks: [{ webhookId: webhook.id, lastError: 'HTTP 500', routeVersion: webhook.version }],
    });
    await a.routes.arrived.promise;
    // Replica B activates it (version 3, active) and writes first.
    const activated = await b.controlPlane.activateWebhook('late_trip', webhook.id);
    assert.equal(activated.version, webhook.version + 2);
    a.routes.gate.open();
    await trip;
    a.routes.gate = undefined;

    const entry = await bucket.get(messaging.topology.keys.webhook('late_trip', webhook.id));
    const route = Route.decode(entry!.value);
    assert.equal(route.version, activated.version);
    assert.equal(route.active, true);
    await assertBucketEqualsPostgres();
  });

  it('a delete committed while a repair of the same missing key is in flight wins', async () => {
    await b.controlPlane.upsertWorkspace({ id: 'repair_vs_delete', name: 'R', plan: 'ADVANCED', notificationEmails: [] });
    const { webhook } = await b.controlPlane.createWebhook('repair_vs_delete', hook);
    const key = messaging.topology.keys.webhook('repair_vs_delete', webhook.id);
    // A crash left the key out of the bucket: no entry at all, not even a delete marker.
    const routesBucket = messaging.topology.buckets.routes;
    await (await jetstreamManager(messaging.nc)).streams.purge(`KV_${routesBucket}`, { filter: `$KV.${routesBucket}.${key}` });
    assert.equal(await bucket.get(key), null);

    // Replica A's pass has read the empty entry and the row, and is about to write the row back...
    const held = latch();
    const release = latch();
    holdWriteOf = async (written) => {
      if (written !== key) return;
      holdWriteOf = undefined;
      held.open();
      await release.promise;
    };
    const pass = a.controlPlane.reconcileRoutes();
    await held.promise;
    // ... when replica B deletes the webhook and removes its route.
    await b.controlPlane.deleteWebhook('repair_vs_delete', webhook.id);
    release.open();
    await pass;

    const entry = await bucket.get(key);
    assert.notEqual(entry?.operation, 'PUT', 'the deleted webhook must not be routed again');
    await assertBucketEqualsPostgres();
  });

  it('a reconcile pass over several pages rebuilds a wiped bucket, deletes what PostgreSQL does not have, and reports its counts', async () => {
    // Wipe every key, and add a key no row stands behind.
    for await (const key of await bucket.keys()) await bucket.delete(key);
    await bucket.put(messaging.topology.keys.webhook('race', 'wh_ghost'), Route.encode(Route.fromPartial({ webhookId: 'wh_ghost', version: 99 })).finish());

    const report = await a.controlPlane.reconcileRoutes();
    const [{ count: workspaces }] = await a.orm.em.getConnection().execute<{ count: string }[]>('select count(*) from workspaces');
    const [{ count: webhooks }] = await a.orm.em.getConnection().execute<{ count: string }[]>('select count(*) from webhooks');
    const rows = Number(workspaces) + Number(webhooks);
    assert.deepEqual({ written: report.written, deleted: report.deleted }, { written: rows, deleted: 1 });
    await assertBucketEqualsPostgres();

    const again = await b.controlPlane.reconcileRoutes();
    assert.deepEqual({ written: again.written, deleted: again.deleted, skippedNewer: again.skippedNewer, checked: again.checked }, { written: 0, deleted: 0, skippedNewer: 0, checked: rows });
  });
});

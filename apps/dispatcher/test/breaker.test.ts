// The breaker against real NATS KV: a pending trip left by a crash is published by the next failure
// while the trip stream still deduplicates it, and dropped (not published) once it is older than that
// window. A trip carries each webhook's route version.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BreakerTripped, Route } from '@webhooks/contracts';
import { decodeBreakerState, encodeBreakerState } from '@webhooks/domain';
import { ensureTopology, JetStreamPublisher, RoutingTable, type Buckets } from '@webhooks/messaging';
import { createLogger } from '@webhooks/telemetry';
import { createTestTopology, timeoutError, uniqueName, withReplaced, type TestTopology } from '@webhooks/testing';
import { Breaker, tripDuplicateWindowMs } from '../src/breaker.js';

const logger = createLogger('breaker-test');

describe('breaker pending trips on real NATS KV', () => {
  let test: TestTopology;
  let buckets: Buckets;
  let routes: RoutingTable;
  let publisher: JetStreamPublisher;

  before(async () => {
    test = await createTestTopology();
    buckets = (await ensureTopology(test.nc, test.topology)).buckets;
    routes = await RoutingTable.open(buckets.routes);
    publisher = new JetStreamPublisher(test.nc);
  });

  after(async () => {
    routes?.stop();
    publisher?.close();
    await test?.remove();
  });

  const t = () => test.topology;
  const pendingTrip = (workspaceId: string, tripId: string) =>
    Buffer.from(BreakerTripped.encode({ tripId, workspaceId, windowSeconds: 60, threshold: 1, failureCount: 2, tripTime: new Date(0), webhooks: [{ webhookId: 'wh_old', name: '', url: '', failureCount: 2, lastErrors: [], routeVersion: 3 }] }).finish()).toString('base64');
  const published = async (workspaceId: string) => {
    const { jetstreamManager } = await import('@webhooks/messaging');
    const jsm = await jetstreamManager(test.nc);
    const last = await jsm.streams.getMessage(t().streams.breaker, { last_by_subj: t().subjects.breakerTripped(workspaceId) });
    return last ? BreakerTripped.decode(last.data) : undefined;
  };

  it('drops a pending trip older than the trip duplicate window instead of publishing it', async () => {
    const workspaceId = uniqueName('ws');
    const now = Date.now();
    const key = t().keys.workspace(workspaceId);
    const window = tripDuplicateWindowMs(t());
    assert.equal(window, 10 * 60_000);
    // A crash left this trip pending 3 hours ago.
    await buckets.breaker.put(key, encodeBreakerState({ failures: [], pendingTrip: pendingTrip(workspaceId, `${workspaceId}-7`), pendingSince: now - 3 * 3_600_000 }));
    const breaker = new Breaker(buckets.breaker, publisher, t(), routes, { threshold: 5, windowMs: 60_000 }, logger);
    await breaker.recordFailure(workspaceId, 'wh_new', now, 'status 500');
    assert.equal(await published(workspaceId), undefined, 'the stale trip was published');
    const state = decodeBreakerState((await buckets.breaker.get(key))!.value);
    assert.equal(state.pendingTrip, undefined);
    assert.deepEqual(state.failures.map((f) => f.webhookId), ['wh_new'], 'the new failure is still counted');
  });

  it('tries a trip whose publish failed again at once, without waiting for the workspace\'s next failure', async () => {
    const workspaceId = uniqueName('ws');
    // The first publish of the trip times out (an election); nothing else of this workspace fails later.
    let failedPublishes = 0;
    const flaky = withReplaced(publisher, {
      publish: async (...args: Parameters<JetStreamPublisher['publish']>) => {
        if (failedPublishes === 0) {
          failedPublishes++;
          throw timeoutError();
        }
        return publisher.publish(...args);
      },
    });
    const breaker = new Breaker(buckets.breaker, flaky, t(), routes, { threshold: 1, windowMs: 60_000 }, logger);
    await breaker.recordFailure(workspaceId, 'wh_a', Date.now(), 'status 500');
    await breaker.recordFailure(workspaceId, 'wh_a', Date.now(), 'status 500'); // crosses 1: the trip
    // Before, the failed publish was logged and the trip left pending until a third failure came.
    assert.equal(failedPublishes, 1, 'the first publish failed');
    assert.ok(await published(workspaceId), 'the trip was published');
    assert.equal(decodeBreakerState((await buckets.breaker.get(t().keys.workspace(workspaceId)))!.value).pendingTrip, undefined, 'and cleared');
  });

  it('publishes a pending trip still inside the window, and a new trip with each route version', async () => {
    const workspaceId = uniqueName('ws');
    const key = t().keys.workspace(workspaceId);
    await buckets.breaker.put(key, encodeBreakerState({ failures: [], pendingTrip: pendingTrip(workspaceId, `${workspaceId}-7`), pendingSince: Date.now() - 60_000 }));
    const breaker = new Breaker(buckets.breaker, publisher, t(), routes, { threshold: 1, windowMs: 60_000 }, logger);
    await breaker.recordFailure(workspaceId, 'wh_new', Date.now(), 'status 500');
    assert.equal((await published(workspaceId))?.tripId, `${workspaceId}-7`);

    const route: Route = { webhookId: 'wh_new', workspaceId, url: 'https://example.com/h', eventTypes: [], headers: {}, active: true, secrets: [], version: 42, name: 'CRM', rateLimit: 0, auth: undefined };
    await buckets.routes.put(t().keys.webhook(workspaceId, 'wh_new'), Route.encode(route).finish());
    await routes.sync();
    await breaker.recordFailure(workspaceId, 'wh_new', Date.now(), 'status 500'); // the 2nd failure crosses 1
    const trip = await published(workspaceId);
    assert.notEqual(trip?.tripId, `${workspaceId}-7`);
    assert.deepEqual(trip?.webhooks.map((w) => [w.webhookId, w.routeVersion]), [['wh_new', 42]]);
    assert.equal(decodeBreakerState((await buckets.breaker.get(key))!.value).pendingTrip, undefined, 'published trips are cleared');
  });
});

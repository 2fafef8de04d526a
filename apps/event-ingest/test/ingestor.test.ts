// The Ingestor against a real NATS server: an event is recorded as accepted only once its tasks are
// stored (a failed queue leaves no record, so the retry is queued rather than answered "duplicate"), and a
// stalled routing-table mirror answers UNAVAILABLE with a message that says to retry.
// Run: cd apps/event-ingest && ../../node_modules/.bin/node --import tsx --test --test-concurrency=1 test/ingestor.test.ts
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Plan, Route, WorkspaceRoute, type Event } from '@webhooks/contracts';
import { DomainError } from '@webhooks/domain';
import { Caller } from '@webhooks/grpc-kit';
import { ensureTopology, JetStreamPublisher, jetstreamManager, RoutingTable, RoutingTableBehindError, streamConfigs, type Buckets } from '@webhooks/messaging';
import { createTestTopology, type TestTopology } from '@webhooks/testing';
import { createLogger } from '@webhooks/telemetry';
import { AcceptedEvents } from '../src/accepted-events.js';
import { Ingestor } from '../src/ingestor.js';

const logger = createLogger('event-ingest-test');
const caller = new Caller('test', 'all');
const limits = { maxEventBytes: 262_144, maxBatchEvents: 10 };

function event(id: string, workspaceId: string): Event {
  return {
    id, workspaceId, type: 'contact.created', occurredAt: new Date('2026-11-24T10:00:00.000Z'),
    data: { $case: 'contactCreated', value: { contact: { id: 'c_1', firstName: 'Ana', lastName: '', email: '', phone: '', language: '', countryCode: '', profilePicUrl: '', assignee: undefined, tags: [], customFields: {}, createdAt: undefined, updatedAt: undefined } } },
  };
}

describe('Ingestor', () => {
  let topo: TestTopology;
  let buckets: Buckets;
  let routes: RoutingTable;
  let publisher: JetStreamPublisher;
  const workspaceId = 'ws_ingest';
  const webhookId = 'wh_ingest_1';

  before(async () => {
    topo = await createTestTopology();
    ({ buckets } = await ensureTopology(topo.nc, topo.topology));
    await buckets.routes.put(topo.topology.keys.workspace(workspaceId), WorkspaceRoute.encode({ workspaceId, plan: Plan.PLAN_ADVANCED, version: 1 }).finish());
    await buckets.routes.put(
      topo.topology.keys.webhook(workspaceId, webhookId),
      Route.encode({ webhookId, workspaceId, name: 'h', url: 'https://example.com/h', eventTypes: ['contact.created'], headers: {}, active: true, secrets: [], version: 1, rateLimit: 0, auth: undefined }).finish(),
    );
    routes = await RoutingTable.open(buckets.routes);
    publisher = new JetStreamPublisher(topo.nc, 1_000);
  });

  after(async () => {
    routes?.stop();
    publisher?.close();
    await topo?.remove();
  });

  it('records an event as accepted only after its tasks are stored', async () => {
    const accepted = new AcceptedEvents(buckets.accepted, topo.topology);
    const ingestor = new Ingestor(publisher, routes, accepted, topo.topology, limits, logger);
    const jsm = await jetstreamManager(topo.nc);
    const stream = topo.topology.streams.deliver(webhookId);

    // The webhook's delivery stream is gone: nothing can be stored, so nothing may be recorded.
    await jsm.streams.delete(stream);
    await assert.rejects(ingestor.publish([event('evt_a', workspaceId)], caller, false), (error: unknown) => {
      assert.ok(error instanceof DomainError && error.kind === 'unavailable', String(error));
      assert.match(error.message, /delivery queue did not confirm the event; retry the call with the same event id/);
      return true;
    });
    assert.equal(await accepted.find(workspaceId, 'evt_a'), undefined, 'an event whose tasks were not stored was recorded as accepted');

    // The retry once the stream is back is queued, not answered "duplicate".
    await jsm.streams.add(streamConfigs(topo.topology).find((c) => c.name === stream) as Parameters<typeof jsm.streams.add>[0]);
    assert.deepEqual(await ingestor.publish([event('evt_a', workspaceId)], caller, false), [{ eventId: 'evt_a', webhookIds: [webhookId], duplicate: false }]);
    assert.equal((await jsm.streams.info(stream)).state.messages, 1);
    assert.deepEqual(await accepted.find(workspaceId, 'evt_a'), { webhookIds: [webhookId] });

    // From then on it is a duplicate, also in a batch, and nothing more is queued.
    assert.deepEqual(await ingestor.publish([event('evt_a', workspaceId), event('evt_b:1.x', workspaceId)], caller, true), [
      { eventId: 'evt_a', webhookIds: [webhookId], duplicate: true },
      { eventId: 'evt_b:1.x', webhookIds: [webhookId], duplicate: false },
    ]);
    assert.equal((await jsm.streams.info(stream)).state.messages, 2);
  });

  it('gives two replicas accepting one event id at once one consistent answer that names every webhook queued', async () => {
    // Replica B's mirror already has a second webhook that replica A's has not yet (a route just created).
    const secondWebhook = 'wh_ingest_2';
    const second = Route.fromPartial({ webhookId: secondWebhook, workspaceId, name: 'h2', url: 'https://example.com/h2', eventTypes: ['contact.created'], active: true, version: 1 });
    const withSecond = Object.create(routes) as RoutingTable;
    withSecond.webhooksOf = (id: string) => [...routes.webhooksOf(id), second];
    // Both look the id up before either records it: the race two replicas meet on a caller's retry.
    let looked = 0;
    let bothLooked!: () => void;
    const barrier = new Promise<void>((resolve) => (bothLooked = resolve));
    const racing = (): AcceptedEvents => {
      const accepted = new AcceptedEvents(buckets.accepted, topo.topology);
      const find = accepted.find.bind(accepted);
      accepted.find = async (ws, id) => {
        const found = await find(ws, id);
        if (++looked === 2) bothLooked();
        await barrier;
        return found;
      };
      return accepted;
    };
    const a = new Ingestor(publisher, routes, racing(), topo.topology, limits, logger);
    const b = new Ingestor(publisher, withSecond, racing(), topo.topology, limits, logger);
    const [fromA, fromB] = await Promise.all([a.publish([event('evt_race', workspaceId)], caller, false), b.publish([event('evt_race', workspaceId)], caller, false)]);
    const answers = [fromA[0]!, fromB[0]!];
    // One is the acceptance, the other a duplicate naming both webhooks; before, both said "not a
    // duplicate" and the record kept whichever list came first.
    assert.deepEqual(answers.map((x) => x.duplicate).sort(), [false, true]);
    const duplicate = answers.find((x) => x.duplicate)!;
    assert.deepEqual([...duplicate.webhookIds].sort(), [webhookId, secondWebhook]);
    assert.deepEqual([...(await new AcceptedEvents(buckets.accepted, topo.topology).find(workspaceId, 'evt_race'))!.webhookIds].sort(), [webhookId, secondWebhook]);
    // A later retry answers the same.
    const later = await a.publish([event('evt_race', workspaceId)], caller, false);
    assert.deepEqual([later[0]!.duplicate, [...later[0]!.webhookIds].sort()], [true, [webhookId, secondWebhook]]);
  });

  it('answers UNAVAILABLE, saying to retry, when the routing table mirror is behind', async () => {
    const behind = { sync: () => Promise.reject(new RoutingTableBehindError(3, 5, 250)) } as unknown as RoutingTable;
    const ingestor = new Ingestor(publisher, behind, new AcceptedEvents(buckets.accepted, topo.topology), topo.topology, limits, logger);
    await assert.rejects(ingestor.publish([event('evt_c', workspaceId)], caller, false), (error: unknown) => {
      assert.ok(error instanceof DomainError && error.kind === 'unavailable', String(error));
      assert.equal(error.message, 'the routing table mirror is behind the bucket: revision 3 applied, 5 written, after 250 ms; retry the call (it is idempotent by event id)');
      return true;
    });
  });
});

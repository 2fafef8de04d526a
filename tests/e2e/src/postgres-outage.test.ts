// PostgreSQL stopped and started while events keep coming. The data plane does not need it: ingest keeps
// accepting, the dispatcher keeps delivering in order, and the attempt records wait in JetStream. The
// control plane answers UNAVAILABLE with a message saying to retry (never INTERNAL, never a crash), and
// once the database is back every attempt is in the log exactly once. The test runs its own cluster.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { Plan } from '@webhooks/contracts';
import { callUnary, expectStatus, HttpReceiver, PrivatePostgresServer, startSystem, testToken, type RunningSystem } from '@webhooks/testing';
import { contactCreated, publish, succeededDeliveries, waitUntil, workspaceWithWebhook } from './support.js';

/** Publishes one event every `everyMs` until stopped; returns the ids that were accepted, in order. */
function steadyLoad(system: RunningSystem, workspaceId: string, everyMs: number): { stop(): Promise<string[]>; accepted(): number } {
  const accepted: string[] = [];
  let running = true;
  const done = (async () => {
    for (let n = 0; running; n++) {
      const id = `pg_${String(n).padStart(4, '0')}`;
      await publish(system, contactCreated(id, workspaceId));
      accepted.push(id);
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    accepted: () => accepted.length,
    stop: async () => {
      running = false;
      await done;
      return accepted;
    },
  };
}

describe('PostgreSQL outage under load', () => {
  let postgres: PrivatePostgresServer;
  let system: RunningSystem;
  let receiver: HttpReceiver;

  before(async () => {
    postgres = await PrivatePostgresServer.start();
    receiver = await HttpReceiver.start();
    system = await startSystem({ DATABASE_URL: postgres.url });
  });

  after(async () => {
    await system?.stop();
    await receiver?.close();
    postgres?.remove();
  });

  it('keeps accepting and delivering in order, answers the control plane with UNAVAILABLE, and logs every attempt once it is back', async () => {
    const { workspaceId } = await workspaceWithWebhook(system, receiver.url);
    const load = steadyLoad(system, workspaceId, 20);
    await waitUntil(() => receiver.requests.length >= 10, 10_000, '10 deliveries before the outage');

    postgres.pause();
    const atStop = load.accepted();
    const [subscription] = system.services.get('subscription')!;
    await subscription!.waitForLog((line) => line.msg === 'writing attempt records failed; they wait in JetStream');
    // The control plane cannot answer without its database: it says so, in a status the caller retries.
    const message = await expectStatus(callUnary(system.subscription, system.subscription.listWebhooks, { workspaceId, pageSize: 10, pageToken: '', status: 0 }, testToken), status.UNAVAILABLE);
    assert.match(message, /unavailable; retry the call/);
    await waitUntil(() => load.accepted() >= atStop + 20, 10_000, '20 events accepted while PostgreSQL is down');

    postgres.resume();
    await waitUntil(() => load.accepted() >= atStop + 40, 10_000, '20 more events after PostgreSQL is back');
    const accepted = await load.stop();

    // Every accepted event reached the endpoint, in order (a repeat of the event in flight is allowed).
    await receiver.waitForRequests(accepted.length, 20_000);
    const arrived = receiver.requests.map((r) => (JSON.parse(r.body) as { id: string }).id);
    assert.deepEqual(arrived.filter((id, i) => i === 0 || arrived[i - 1] !== id), accepted);

    // Once it is back, every attempt is in the log exactly once, and the control plane answers again.
    const logged = await succeededDeliveries(system, workspaceId, accepted.length, 60_000);
    assert.deepEqual(logged.map((d) => d.eventId).sort(), [...accepted].sort());
    assert.ok(logged.every((d) => d.attemptCount === 1), 'a delivery has more than one attempt in the log');
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'Acme again', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
    for (const [name, list] of system.services) for (const service of list) assert.ok(service.running, `${name} exited`);
  });
});

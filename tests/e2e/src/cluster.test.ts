// The production topology on one machine: three clustered nats-server processes (streams and buckets with
// three replicas), two subscription, two ingest and three dispatcher processes and the notifier. Under a
// steady load it SIGKILLs the NATS server leading most delivery streams and starts it again, restarts every
// service one process at a time (SIGTERM), and keeps creating, disabling and deleting webhooks while the
// reconciler runs every second; afterwards it republishes delivered event ids. Then it checks every
// guarantee that topology must keep and prints what it measured. The schedule is scaled down; the
// assertions are about completeness, order and counts, never about timing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { status } from '@grpc/grpc-js';
import { IngestServiceClient, Plan, Route, SubscriptionServiceClient, type Event, type PublishEventResponse } from '@webhooks/contracts';
import { connectNats, jetstream, jetstreamManager, Kvm, topology } from '@webhooks/messaging';
import { HttpReceiver, insecure, NatsCluster, SmtpSink, startSystem, uniqueName, type RunningSystem, type ServiceName } from '@webhooks/testing';
import { createWebhookOnce, ReplicatedCalls } from './replicated-calls.js';
import { contactCreated, waitUntil } from './support.js';

/** Steady-load shape: workspaces publishing in parallel, each to its own two webhooks. */
const loadWorkspaces = 6;
const webhooksPerWorkspace = 2;
const pauseBetweenEventsMs = 60;
const portVariables: Partial<Record<ServiceName, string>> = { subscription: 'SUBSCRIPTION_GRPC_PORT', 'event-ingest': 'INGEST_GRPC_PORT' };

interface Accepted {
  readonly id: string;
  readonly webhookIds: readonly string[];
  readonly sentAt: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The event ids one endpoint path received, in arrival order. */
function arrivals(receiver: HttpReceiver, path: string): { id: string; at: number }[] {
  return receiver.requests.filter((r) => r.path === path).map((r) => ({ id: (JSON.parse(r.body) as { id: string }).id, at: r.receivedAt }));
}

describe('production topology: a three-server NATS cluster with replicas of every service', () => {
  let cluster: NatsCluster;
  let smtp: SmtpSink;
  let receiver: HttpReceiver;
  let system: RunningSystem;
  const ingestClients: IngestServiceClient[] = [];
  const subscriptionClients: SubscriptionServiceClient[] = [];

  before(async () => {
    cluster = await NatsCluster.start();
    smtp = await SmtpSink.start();
    // Paths under /fail answer 503 (they trip the breaker); the rest answer 200 after a few milliseconds,
    // so restarts and the kill land while attempts are in flight.
    receiver = await HttpReceiver.start((request, response) => {
      if (request.path.startsWith('/fail')) {
        response.statusCode = 503;
        response.end('down');
      } else setTimeout(() => response.end('ok'), 5);
    });
    system = await startSystem({
      NATS_URL: cluster.url,
      NATS_REPLICAS: '3',
      ROUTES_RECONCILE_INTERVAL: '1s',
      DELIVERY_ACK_WAIT: '4s',
      // Long enough that an endpoint answering in 5 ms on two loaded cores is not timed out (a timed-out
      // attempt is retried, and the endpoint sees the event again by the retry rules, not as a repeat).
      ATTEMPT_TIMEOUT: '2s',
      RETRY_DELAYS: '200ms,400ms,600ms',
      GIVE_UP_AFTER: '3s',
      BREAKER_THRESHOLD: '5',
      BREAKER_WINDOW: '1m',
      SMTP_URL: smtp.url,
      SHUTDOWN_GRACE: '3s',
      // Each attempt is logged (debug) so that a repeat can be traced to the process that sent each copy.
      LOG_LEVEL: 'debug',
      // Leases survive the slow KV answers of three servers on two busy cores (15 s in production).
      DISPATCH_LEASE_TTL: '6s',
    });
    // Every gRPC service keeps its port through a restart, as a Kubernetes Service keeps its address.
    await system.startService('subscription', { SUBSCRIPTION_GRPC_PORT: '0' });
    await system.startService('event-ingest', { INGEST_GRPC_PORT: '0' });
    await system.startService('dispatcher');
    await system.startService('dispatcher');
    for (const process of system.services.get('subscription')!) subscriptionClients.push(new SubscriptionServiceClient(process.address(), insecure));
    for (const process of system.services.get('event-ingest')!) ingestClients.push(new IngestServiceClient(process.address(), insecure));
  });

  after(async () => {
    // What went wrong, if anything did: each distinct error the services logged, once, with its count.
    const errors = new Map<string, number>();
    for (const [name, processes] of system?.services ?? []) {
      for (const process of processes) {
        for (const line of process.logs) {
          if (line.level !== 'error' && line.level !== 'fatal' && line.level !== 'warn') continue;
          const key = `${name}: ${line.msg} ${JSON.stringify((line as { err?: { message?: string } }).err?.message ?? '')}`;
          errors.set(key, (errors.get(key) ?? 0) + 1);
        }
      }
    }
    for (const [key, count] of errors) console.log(`${count} × ${key.slice(0, 300)}`);
    for (const client of [...ingestClients, ...subscriptionClients]) client.close();
    await system?.stop();
    await cluster?.remove();
    await smtp?.pause();
    await receiver?.close();
  });

  it('keeps every guarantee through a NATS leader kill, rolling restarts and routing churn', async () => {
    const started = Date.now();
    const control = new ReplicatedCalls(subscriptionClients);
    const ingest = new ReplicatedCalls(ingestClients, { retries: 80, pauseMs: 250, deadlineMs: 5_000 });
    /** PublishEvent as the README tells callers to: on any failure, the same event again. */
    const publish = (event: Event): Promise<PublishEventResponse> => ingest.call((c) => c.publishEvent, { event });
    const upsertWorkspace = (id: string, emails: string[] = []) =>
      control.call((c) => c.upsertWorkspace, { workspace: { id, name: id, plan: Plan.PLAN_ADVANCED, notificationEmails: emails } });
    const createWebhook = async (workspaceId: string, name: string, path: string): Promise<string> =>
      (await createWebhookOnce(control, { workspaceId, name, url: `${new URL(receiver.url).origin}${path}`, eventTypes: ['contact.created'] })).id;
    const deleteWebhook = (workspaceId: string, webhookId: string) =>
      control.call((c) => c.deleteWebhook, { workspaceId, webhookId }, (error) => (error.code === status.NOT_FOUND ? Promise.resolve({}) : undefined));

    // The steady load's workspaces and webhooks: each webhook has its own path.
    const webhookOfPath = new Map<string, string>();
    const workspaces: { id: string; paths: string[]; accepted: Accepted[] }[] = [];
    for (let w = 0; w < loadWorkspaces; w++) {
      const id = uniqueName(`load${w}`);
      await upsertWorkspace(id);
      const paths: string[] = [];
      for (let h = 0; h < webhooksPerWorkspace; h++) {
        paths.push(`/load/${w}/${h}`);
        webhookOfPath.set(`/load/${w}/${h}`, await createWebhook(id, `hook ${h}`, `/load/${w}/${h}`));
      }
      workspaces.push({ id, paths, accepted: [] });
    }

    let loading = true;
    const load = Promise.all(
      workspaces.map(async (workspace) => {
        for (let n = 0; loading; n++) {
          const id = `${workspace.id}_e${String(n).padStart(5, '0')}`;
          const sentAt = Date.now();
          const answer = await publish(contactCreated(id, workspace.id));
          workspace.accepted.push({ id, webhookIds: answer.result!.webhookIds, sentAt });
          await sleep(pauseBetweenEventsMs);
        }
      }),
    );

    // A failure of the load shows where the test awaits it, not as an unhandled rejection meanwhile.
    load.catch(() => undefined);

    // Routing churn while the reconciler runs every second: webhooks created, disabled and deleted. Each
    // event published after a webhook's disable was acknowledged must never reach it.
    const churnWorkspace = uniqueName('churn');
    await upsertWorkspace(churnWorkspace);
    const disabledAt = new Map<string, number>();
    const churnPaths: string[] = [];
    const churnSent: { id: string; sentAt: number }[] = [];
    const churnKept: string[] = [];
    let churning = true;
    const churn = (async () => {
      for (let round = 0; churning; round++) {
        const path = `/churn/${round}`;
        churnPaths.push(path);
        const webhookId = await createWebhook(churnWorkspace, `churn ${round}`, path);
        for (let n = 0; n < 3; n++) {
          const id = `${churnWorkspace}_r${round}_e${n}`;
          churnSent.push({ id, sentAt: Date.now() });
          await publish(contactCreated(id, churnWorkspace));
        }
        await control.call((c) => c.deactivateWebhook, { workspaceId: churnWorkspace, webhookId });
        disabledAt.set(path, Date.now());
        const id = `${churnWorkspace}_r${round}_after`;
        churnSent.push({ id, sentAt: Date.now() });
        await publish(contactCreated(id, churnWorkspace));
        // Every other webhook is deleted at once; the rest stay disabled for a while (a workspace has at most 20).
        if (round % 2 === 0) await deleteWebhook(churnWorkspace, webhookId);
        else churnKept.push(webhookId);
        if (churnKept.length > 5) await deleteWebhook(churnWorkspace, churnKept.shift()!);
        await sleep(200);
      }
    })();

    churn.catch(() => undefined);

    // A workspace whose endpoint always fails: its breaker trips during the faults below.
    const failingWorkspace = uniqueName('failing');
    await upsertWorkspace(failingWorkspace, ['ops@example.test']);
    const failingWebhook = await createWebhook(failingWorkspace, 'failing', '/fail/0');

    // The load flows before any fault: every endpoint has received its first event.
    await waitUntil(() => workspaces.every((w) => w.paths.every((path) => arrivals(receiver, path).length > 0)), 60_000, () =>
      `first deliveries (received per endpoint: ${workspaces.map((w) => w.paths.map((path) => arrivals(receiver, path).length).join('/')).join(', ')})`);
    const flowingAfter = (Date.now() - started) / 1000;

    // 1. SIGKILL the server leading most delivery streams, then start it again.
    const t = topology({ prefix: system.prefix });
    const leaders = await cluster.leaders(t.streams.deliverShards);
    const counts = new Map<string, number>();
    for (const leader of leaders.values()) counts.set(leader, (counts.get(leader) ?? 0) + 1);
    const victim = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    const killedAt = Date.now();
    const phases: { name: string; at: number }[] = [{ name: 'before faults', at: started }, { name: 'NATS kill', at: killedAt }];
    await cluster.kill(victim);
    for (let n = 0; n < 8; n++) await publish(contactCreated(`${failingWorkspace}_e${n}`, failingWorkspace));
    await sleep(4_000);
    await cluster.restart(victim);
    // Recovered: an event published after the restart has reached its endpoints.
    const probeWorkspace = workspaces[0]!;
    const firstAfterRestart = probeWorkspace.accepted.length;
    await waitUntil(() => probeWorkspace.accepted.length > firstAfterRestart && arrivals(receiver, probeWorkspace.paths[0]!).some((a) => a.id === probeWorkspace.accepted[firstAfterRestart]!.id), 60_000, () =>
      `delivery after the NATS restart (accepted per workspace: ${workspaces.map((w) => w.accepted.length).join(', ')}; received per endpoint: ${workspaces.map((w) => w.paths.map((path) => arrivals(receiver, path).length).join('/')).join(', ')})`);
    const secondsToRecover = (Date.now() - killedAt) / 1000;

    // 2. Every service restarted one process at a time, each replacement ready before the next goes.
    phases.push({ name: 'rolling restarts', at: Date.now() });
    let rollingRestarts = 0;
    for (const name of ['subscription', 'event-ingest', 'dispatcher', 'notifier'] as const) {
      const processes = [...system.services.get(name)!].filter((p) => p.running);
      for (const old of processes) {
        const portVariable = portVariables[name];
        const extra: Record<string, string> = portVariable ? { [portVariable]: String(old.port()) } : {};
        await old.stop();
        await system.startService(name, extra);
        rollingRestarts++;
        await sleep(1_000);
      }
    }

    phases.push({ name: 'after faults', at: Date.now() });
    await sleep(2_000);
    loading = false;
    churning = false;
    await Promise.all([load, churn]);

    // Everything accepted reaches its endpoints.
    const expected = workspaces.flatMap((w) => w.paths.map((path) => ({ path, ids: w.accepted.map((a) => a.id) })));
    await waitUntil(
      () => expected.every(({ path, ids }) => new Set(arrivals(receiver, path).map((a) => a.id)).size >= ids.length),
      90_000,
      () => `every accepted event delivered (${expected.map(({ path, ids }) => `${path}: ${new Set(arrivals(receiver, path).map((a) => a.id)).size}/${ids.length}`).join(', ')})`,
    );

    // 3. Republish a sample of delivered ids (the NATS restart is behind us): all duplicates, none delivered again.
    const sample = workspaces.flatMap((w) => w.accepted.filter((_, i) => i % 7 === 3).slice(0, 5).map((a) => ({ workspaceId: w.id, id: a.id })));
    const republished = await Promise.all(sample.map(({ workspaceId, id }) => publish(contactCreated(id, workspaceId))));
    const fenceId = `${probeWorkspace.id}_fence`;
    await publish(contactCreated(fenceId, probeWorkspace.id));
    await waitUntil(() => probeWorkspace.paths.every((path) => arrivals(receiver, path).some((a) => a.id === fenceId)), 30_000, 'the fence event');

    // Checks.
    let repeats = 0;
    let deliveries = 0;
    const repeatsByPhase = new Map<string, number>();
    /** Whether a dispatcher logged a failed attempt of this event to this webhook: the endpoint then saw it again by the retry rules. */
    const retried = (eventId: string, webhookId: string) =>
      (system.services.get('dispatcher') ?? []).some((dispatcher) => dispatcher.logs.some((line) => line.msg === 'attempt made' && line.eventId === eventId && line.webhookId === webhookId && line.outcome === 'failed'));
    const retriesByPhase = new Map<string, number>();
    /**
     * Whether the dispatchers attempted this event for this webhook as two different tasks (two stream
     * sequences of one shard): it was stored twice on its way in, not sent twice by a dispatcher.
     */
    const storedTwice = (eventId: string, webhookId: string) =>
      new Set((system.services.get('dispatcher') ?? []).flatMap((dispatcher) => dispatcher.logs.filter((line) => line.msg === 'attempt made' && line.eventId === eventId && line.webhookId === webhookId && line.path === 'lane').map((line) => line.seq))).size > 1;
    const storedTwiceByPhase = new Map<string, number>();
    for (const { path, ids } of expected) {
      const timed = arrivals(receiver, path).filter((a) => a.id !== fenceId);
      const received = timed.map((a) => a.id);
      deliveries += received.length;
      const once = received.filter((id, i) => i === 0 || received[i - 1] !== id);
      repeats += received.length - once.length;
      timed.forEach((arrival, i) => {
        if (i === 0 || timed[i - 1]!.id !== arrival.id) return;
        const phase = phases.filter((p) => p.at <= arrival.at).at(-1)!.name;
        const webhookId = webhookOfPath.get(path)!;
        const byPhase = retried(arrival.id, webhookId) ? retriesByPhase : storedTwice(arrival.id, webhookId) ? storedTwiceByPhase : repeatsByPhase;
        byPhase.set(phase, (byPhase.get(phase) ?? 0) + 1);
      });
      // What each dispatcher process did with a repeated event: the evidence of both sends.
      timed.forEach((arrival, i) => {
        if (i === 0 || timed[i - 1]!.id !== arrival.id) return;
        console.log(`repeat of ${arrival.id} at ${path}:`);
        for (const [index, dispatcher] of (system.services.get('dispatcher') ?? []).entries()) {
          for (const line of dispatcher.logs) if (JSON.stringify(line).includes(arrival.id)) console.log(`  dispatcher #${index} (pid ${dispatcher.pid}): ${JSON.stringify(line)}`);
        }
      });
      // An event out of order: what each dispatcher process did with it.
      const wrong = once.findIndex((id, i) => id !== ids[i]);
      if (wrong >= 0) {
        console.log(`out of order at ${path}: ${once[wrong]} where ${ids[wrong]} was due`);
        for (const [index, dispatcher] of (system.services.get('dispatcher') ?? []).entries()) {
          for (const line of dispatcher.logs) if (JSON.stringify(line).includes(once[wrong]!) || /stalled|shards (released|acquired)|recalled/.test(line.msg ?? '')) console.log(`  dispatcher #${index} (pid ${dispatcher.pid}): ${JSON.stringify(line).slice(0, 400)}`);
        }
      }
      // In order, each exactly once, except the immediate repeat of an event in flight at a kill.
      assert.deepEqual(once, ids, `order and completeness at ${path}`);
    }
    assert.ok(republished.every((answer) => answer.result!.duplicate), `every republished id answered duplicate (${republished.filter((a) => !a.result!.duplicate).length} did not)`);

    // No event sent after a webhook's disable was acknowledged reached it.
    const sentAt = new Map(churnSent.map((s) => [s.id, s.sentAt]));
    for (const path of churnPaths) {
      const disabled = disabledAt.get(path);
      if (disabled === undefined) continue;
      const late = arrivals(receiver, path).filter((a) => sentAt.get(a.id)! > disabled);
      assert.deepEqual(late.map((a) => a.id), [], `${path} received events sent after its disable was acknowledged`);
    }

    // The routing table equals PostgreSQL once the reconciler had a pass after the churn.
    await sleep(2_500);
    const database = new pg.Client({ connectionString: system.database.url });
    await database.connect();
    const nc = await connectNats(cluster.url, 'cluster-test-check');
    try {
      const { rows } = await database.query<{ id: string; workspace_id: string; status: string; version: number }>('SELECT id, workspace_id, status, version FROM webhooks');
      const kv = await new Kvm(jetstream(nc)).open(t.buckets.routes);
      const inBucket = new Map<string, Route>();
      for await (const key of await kv.keys('wh.>')) {
        const entry = await kv.get(key);
        if (entry?.operation === 'PUT') inBucket.set(key, Route.decode(entry.value));
      }
      const fromPostgres = new Map(rows.map((row) => [t.keys.webhook(row.workspace_id, row.id), { active: row.status === 'active', version: Number(row.version) }]));
      const fromBucket = new Map([...inBucket.entries()].map(([key, route]) => [key, { active: route.active, version: Number(route.version) }]));
      assert.deepEqual(fromBucket, fromPostgres, 'wh_routes equals PostgreSQL');

      // Exactly one email per trip.
      const trips = (await (await jetstreamManager(nc)).streams.info(t.streams.breaker)).state.messages;
      assert.ok(trips >= 1, 'the failing workspace tripped its breaker');
      await smtp.waitForMessages(trips, 60_000);
      // Room for a second email of the same trip to show up, if the notifier were to send one.
      await sleep(2_000);
      assert.equal(smtp.messages.length, trips, 'one email per trip');
      const { rows: failing } = await database.query<{ status: string }>('SELECT status FROM webhooks WHERE id = $1', [failingWebhook]);
      assert.equal(failing[0]?.status, 'disabled', 'the failing webhook was disabled by its trip');
    } finally {
      await database.end();
      await nc.close();
    }

    // Recovery after the kill, per steady-load webhook: from the kill to the first delivery of an event
    // accepted after it; and what the dispatchers did with their leases meanwhile.
    const recoveries = workspaces.flatMap((w) => {
      const acceptedAfter = new Set(w.accepted.filter((a) => a.sentAt >= killedAt).map((a) => a.id));
      return w.paths.map((path) => (arrivals(receiver, path).find((a) => acceptedAfter.has(a.id))?.at ?? Infinity) - killedAt);
    }).sort((a, b) => a - b);
    const firstAccepted = Math.min(...workspaces.flatMap((w) => w.accepted.filter((a) => a.sentAt >= killedAt).map((a) => a.sentAt))) - killedAt;
    const leaseEvents = new Map<string, number[]>();
    // The rest of the breakdown: the client reconnecting, leases pausing and resuming, consumers recreated.
    const breakdownEvents = new Map([
      ['NATS connection back; restarting the delivery loops', 'reconnected'],
      ['shard leases not renewed in time; their shards pause until a renewal goes through', 'leases paused'],
      ['shard leases renewed again; their shards resume', 'leases resumed'],
      ['shard consumer stalled: tasks wait but none was handed out; recreating it', 'consumer stalled (recreated)'],
      ['delivery shard loop ended with an error; restarting it', 'shard loop restarted'],
      ['attempt record not stored yet; retrying it in place', 'record store retried'],
      ['attempt record stored after retries', 'record stored after retries'],
    ]);
    for (const dispatcher of system.services.get('dispatcher') ?? []) {
      for (const line of dispatcher.logs) {
        const at = Date.parse(String(line.time)) - killedAt;
        if (!(at >= 0 && at < 60_000)) continue;
        const failure = (line as { err?: { message?: string } }).err?.message?.split(':')[0];
        const key =
          line.msg === 'shards released' || line.msg === 'shards acquired'
            ? `${line.msg}${line.reason ? ` (${String(line.reason)})` : ''}`
            : line.msg === 'shard lease heartbeat failed; trying again'
              ? `heartbeat failed (${failure})`
              : breakdownEvents.get(line.msg ?? '');
        if (key) leaseEvents.set(key, [...(leaseEvents.get(key) ?? []), at]);
      }
    }
    const seconds = (ms: number) => (ms / 1000).toFixed(1);
    console.log(
      `cluster suite recovery after the kill: first event accepted again after ${seconds(firstAccepted)} s; webhooks delivering again after ${seconds(recoveries[0]!)} s (first), ${seconds(recoveries[Math.floor(recoveries.length / 2)]!)} s (median), ${seconds(recoveries.at(-1)!)} s (last); ` +
        `dispatcher lease events: ${[...leaseEvents].map(([key, ats]) => `${ats.length} × ${key} at ${ats.map(seconds).join('/')} s`).join('; ') || 'none'}`,
    );

    const events = workspaces.reduce((sum, w) => sum + w.accepted.length, 0) + churnSent.length;
    console.log(
      `cluster suite: load flowing after ${flowingAfter.toFixed(0)} s, ${events} events accepted, ${deliveries} deliveries to the steady-load endpoints, 1 NATS server killed (${victim}, leading ${counts.get(victim)} of ${leaders.size} delivery streams), ` +
        `${rollingRestarts} rolling restarts, ${repeats} immediate repeats: ${[...repeatsByPhase.values()].reduce((a, b) => a + b, 0)} sent again (${[...repeatsByPhase].map(([phase, n]) => `${n} ${phase}`).join(', ')}), ${[...retriesByPhase.values()].reduce((a, b) => a + b, 0)} retried after a failed attempt (${[...retriesByPhase].map(([phase, n]) => `${n} ${phase}`).join(', ')}) and ${[...storedTwiceByPhase.values()].reduce((a, b) => a + b, 0)} stored twice by ingest (${[...storedTwiceByPhase].map(([phase, n]) => `${n} ${phase}`).join(', ')}), ${secondsToRecover.toFixed(1)} s to recover, ${churnPaths.length} webhooks churned, ${sample.length} ids republished, ${((Date.now() - started) / 1000).toFixed(0)} s in all`,
    );
  });
});

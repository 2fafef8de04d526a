// Webhook activity end to end: a breaker trip in the history and on watches (open, and resumed from a
// cursor before the trip), a watch that outlives a SIGKILLed subscription replica with nothing missed or
// repeated, who made each change, and tenancy for scoped tokens.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { WebhooksClient } from '@webhooks/client';
import { ActivityKind, ActorKind, Plan, type WebhookActivity } from '@webhooks/contracts';
import { callUnary, expectStatus, HttpReceiver, startSystem, testToken, uniqueName, waitUntil, type RunningSystem } from '@webhooks/testing';
import { contactCreated } from './support.js';

const scopedToken = 'scoped-activity-token-0123';

describe('webhook activity', () => {
  let system: RunningSystem;
  let failing: HttpReceiver;
  const scopedWorkspace = uniqueName('scoped');
  const clients: WebhooksClient[] = [];
  const watches: AbortController[] = [];

  before(async () => {
    failing = await HttpReceiver.start((_req, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    // Named tokens: the history says which one made a change. A breaker of 2 failed attempts trips at once.
    system = await startSystem({ API_TOKENS: `core=${testToken},${scopedToken}:${scopedWorkspace}`, BREAKER_THRESHOLD: '2', RETRY_DELAYS: '50ms,50ms,50ms', GIVE_UP_AFTER: '2s' });
  });

  after(async () => {
    for (const watch of watches) watch.abort();
    for (const client of clients) client.close();
    await system?.stop();
    await failing?.close();
  });

  const clientOf = (port: number, token = testToken) => {
    const client = new WebhooksClient({ subscriptionAddress: `127.0.0.1:${port}`, ingestAddress: `127.0.0.1:${system.services.get('event-ingest')![0]!.port()}`, token, retryBaseMs: 100 });
    clients.push(client);
    return client;
  };
  const firstReplica = () => system.services.get('subscription')![0]!.port();

  /** Follows a watch in the background into `into`; `resumes` counts how often it resumed after a broken stream. */
  function follow(client: WebhooksClient, workspaceId: string, cursor: string, into: WebhookActivity[]) {
    const abort = new AbortController();
    watches.push(abort);
    const state = { resumes: 0, error: undefined as ServiceError | undefined };
    void (async () => {
      try {
        for await (const record of client.watchActivity({ workspaceId, cursor }, { signal: abort.signal, onResume: () => state.resumes++ })) into.push(record);
      } catch (error) {
        state.error = error as ServiceError;
      }
    })();
    return state;
  }

  async function workspace(id: string) {
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id, name: id, plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
  }
  const history = async (workspaceId: string, webhookId = '') =>
    (await callUnary(system.subscription, system.subscription.listWebhookActivity, { workspaceId, webhookId, startTime: undefined, endTime: undefined, pageSize: 100, pageToken: '' }, testToken)).activity;

  it('shows a breaker trip in the history, on a watch that was open, and on one resumed from a cursor before it', async () => {
    const workspaceId = uniqueName('trip');
    await workspace(workspaceId);
    const client = clientOf(firstReplica());
    const open: WebhookActivity[] = [];
    follow(client, workspaceId, '', open);
    const created = await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name: 'crm', url: failing.url, eventTypes: ['contact.created'], headers: {} }, testToken);
    const webhookId = created.webhook!.id;
    await waitUntil(() => open.length >= 1, 10_000, 'the created record on the open watch');
    const beforeTrip = open[0]!.cursor;
    assert.deepEqual([open[0]!.kind, open[0]!.actor?.kind, open[0]!.actor?.name], [ActivityKind.ACTIVITY_KIND_CREATED, ActorKind.ACTOR_KIND_API_TOKEN, 'core']);

    await callUnary(system.ingest, system.ingest.publishEvent, { event: contactCreated(uniqueName('t'), workspaceId) }, testToken);
    await waitUntil(() => open.some((r) => r.kind === ActivityKind.ACTIVITY_KIND_DISABLED_BY_BREAKER), 20_000, () => `the trip on the open watch (${open.map((r) => ActivityKind[r.kind]).join(', ')})`);
    const trip = open.find((r) => r.kind === ActivityKind.ACTIVITY_KIND_DISABLED_BY_BREAKER)!;
    assert.equal(trip.webhookId, webhookId);
    assert.deepEqual([trip.actor?.kind, trip.actor?.name], [ActorKind.ACTOR_KIND_SYSTEM, 'breaker']);
    assert.ok(trip.failureCount > 2, `failure count ${trip.failureCount}`);
    assert.equal(trip.window?.seconds, 1800);
    assert.match(trip.lastError, /status 503/);

    // The history says the same, newest first.
    assert.deepEqual((await history(workspaceId, webhookId)).map((r) => [ActivityKind[r.kind], r.cursor]), [...open].reverse().map((r) => [ActivityKind[r.kind], r.cursor]));

    // Resumed from the cursor taken before the trip: the trip comes first, nothing before it again.
    const resumed: WebhookActivity[] = [];
    follow(clientOf(firstReplica()), workspaceId, beforeTrip, resumed);
    await waitUntil(() => resumed.length >= 1, 10_000, 'the trip on the resumed watch');
    assert.equal(resumed[0]!.cursor, trip.cursor);

    // Activated again by an admin in the portal (the portal says so on the call): recorded as such.
    await WebhooksClient.runOnBehalfOf('portal-session', () => client.activateWebhook({ workspaceId, webhookId }));
    await waitUntil(() => open.some((r) => r.kind === ActivityKind.ACTIVITY_KIND_ACTIVATED), 10_000, 'the activation on the open watch');
    const activated = open.find((r) => r.kind === ActivityKind.ACTIVITY_KIND_ACTIVATED)!;
    assert.deepEqual([activated.actor?.kind, activated.actor?.tokenName], [ActorKind.ACTOR_KIND_PORTAL_SESSION, 'core']);
  });

  it('resumes a watch across a SIGKILLed subscription replica with nothing missed and nothing repeated', async () => {
    const workspaceId = uniqueName('restart');
    await workspace(workspaceId);
    const replica = await system.startService('subscription');
    const port = replica.port();
    const seen: WebhookActivity[] = [];
    const watch = follow(clientOf(port), workspaceId, '', seen);
    const change = (name: string) => callUnary(system.subscription, system.subscription.createWebhook, { workspaceId, name, url: failing.url, eventTypes: ['contact.updated'], headers: {} }, testToken);
    for (const name of ['a1', 'a2', 'a3']) await change(name);
    await waitUntil(() => seen.length === 3, 10_000, () => `3 records before the kill (${seen.length})`);

    await replica.kill();
    // Written while the watched replica is gone, through the other one.
    for (const name of ['b1', 'b2', 'b3']) await change(name);
    await system.startService('subscription', { SUBSCRIPTION_GRPC_PORT: String(port) });
    for (const name of ['c1', 'c2']) await change(name);

    await waitUntil(() => seen.length >= 8, 30_000, () => `8 records (${seen.map((r) => r.webhookName).join(', ')})`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(seen.map((r) => r.webhookName), ['a1', 'a2', 'a3', 'b1', 'b2', 'b3', 'c1', 'c2'], 'every record once, in order');
    assert.deepEqual(seen.map((r) => r.cursor), (await history(workspaceId)).reverse().map((r) => r.cursor));
    assert.ok(watch.resumes >= 1, 'the watch was resumed');
    assert.equal(watch.error, undefined);
  });

  it('shows a scoped token its own workspace\'s activity and nothing of another\'s', async () => {
    await workspace(scopedWorkspace);
    const other = uniqueName('other');
    await workspace(other);
    const scoped = clientOf(firstReplica(), scopedToken);
    const mine: WebhookActivity[] = [];
    follow(scoped, scopedWorkspace, '', mine);
    await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId: other, name: 'theirs', url: failing.url, eventTypes: ['contact.updated'], headers: {} }, testToken);
    await callUnary(system.subscription, system.subscription.createWebhook, { workspaceId: scopedWorkspace, name: 'mine', url: failing.url, eventTypes: ['contact.updated'], headers: {} }, scopedToken);
    await waitUntil(() => mine.length >= 1, 10_000, 'its own record');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(mine.map((r) => [r.workspaceId, r.webhookName]), [[scopedWorkspace, 'mine']]);
    // The scoped token is named by its first characters: it has no name of its own.
    assert.equal(mine[0]!.actor?.name, 'scop…');

    const refused = await expectStatus(
      callUnary(system.subscription, system.subscription.listWebhookActivity, { workspaceId: other, webhookId: '', startTime: undefined, endTime: undefined, pageSize: 10, pageToken: '' }, scopedToken),
      status.PERMISSION_DENIED,
    );
    assert.match(refused, new RegExp(`may not act on workspace "${other}"`));
    for (const workspaceId of [other, '']) {
      const ended = follow(scoped, workspaceId, '', []);
      await waitUntil(() => ended.error !== undefined, 10_000, `the watch of "${workspaceId}" refused`);
      assert.equal(ended.error!.code, status.PERMISSION_DENIED);
      if (workspaceId === '') assert.match(ended.error!.details, /needs a token for every workspace/);
    }
    // A cursor that is not one is refused, saying what to pass.
    const bad = follow(clientOf(firstReplica()), other, 'nope', []);
    await waitUntil(() => bad.error !== undefined, 10_000, 'the bad cursor refused');
    assert.equal(bad.error!.code, status.INVALID_ARGUMENT);
    assert.match(bad.error!.details, /^cursor: is not a cursor from an activity record/);
  });
});

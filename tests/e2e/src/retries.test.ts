// The dispatcher's rules observed from real endpoints, with the product's schedule scaled down
// (30/60/90 s and 3 minutes become 100/200/300 ms and 600 ms): retries, order under retries, the drop and
// its record, redirects and timeouts as failures. Assertions are about what happened and in what order,
// with gaps no shorter than the configured delays; never about how fast.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AttemptDecision } from '@webhooks/contracts';
import { attemptRecords, HttpReceiver, startSystem, type RunningSystem } from '@webhooks/testing';
import { contactCreated, publish, workspaceWithWebhook } from './support.js';

const delays = [100, 200, 300];

describe('retries, order and drops (scaled schedule)', () => {
  let system: RunningSystem;
  const receivers: HttpReceiver[] = [];

  before(async () => {
    system = await startSystem({ RETRY_DELAYS: delays.map((d) => `${d}ms`).join(','), GIVE_UP_AFTER: '600ms', ATTEMPT_TIMEOUT: '400ms' });
  });

  after(async () => {
    const codes = await system?.stop();
    for (const receiver of receivers) await receiver.close();
    // Every service drained and exited 0 on SIGTERM.
    assert.deepEqual(codes, { subscription: [0], 'event-ingest': [0], dispatcher: [0], notifier: [0] });
  });

  async function receiver(...args: Parameters<typeof HttpReceiver.start>): Promise<HttpReceiver> {
    const r = await HttpReceiver.start(...args);
    receivers.push(r);
    return r;
  }

  it('retries after each configured delay and keeps later events behind the one being retried', async () => {
    // The first two requests fail, everything after succeeds.
    const endpoint = await receiver((_req, res, index) => {
      res.statusCode = index < 2 ? 500 : 200;
      res.end(index < 2 ? 'busy' : 'ok');
    });
    const { workspaceId, webhookId } = await workspaceWithWebhook(system, endpoint.url);
    for (const id of ['e1', 'e2', 'e3', 'e4']) await publish(system, contactCreated(id, workspaceId));

    const requests = await endpoint.waitForRequests(6);
    assert.deepEqual(requests.map((r) => JSON.parse(r.body).id), ['e1', 'e1', 'e1', 'e2', 'e3', 'e4']);

    const records = await attemptRecords(system.prefix, workspaceId, webhookId, 6);
    const first = records.filter((r) => r.eventId === 'e1');
    assert.deepEqual(first.map((r) => [r.attemptNumber, r.decision, r.statusCode]), [
      [1, AttemptDecision.ATTEMPT_DECISION_RETRY, 500],
      [2, AttemptDecision.ATTEMPT_DECISION_RETRY, 500],
      [3, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, 200],
    ]);
    assert.equal(first[0]!.failureReason, 'status 500');
    assert.equal(first[0]!.responseExcerpt, 'busy');
    // The timetable counts from the first attempt: +100 ms, then +300 ms.
    const start = first[0]!.firstAttemptTime!.getTime();
    assert.equal(first[0]!.retryTime!.getTime() - start, delays[0]);
    assert.equal(first[1]!.retryTime!.getTime() - start, delays[0]! + delays[1]!);
    assert.ok(first[1]!.startTime!.getTime() - start >= delays[0]!, 'the 2nd attempt started before its planned time');
    assert.ok(first[2]!.startTime!.getTime() - start >= delays[0]! + delays[1]!, 'the 3rd attempt started before its planned time');
  });

  it('drops an event once the next attempt would fall after the limit, records it, and goes on', async () => {
    const endpoint = await receiver((req, res) => {
      const id = JSON.parse(req.body).id as string;
      res.statusCode = id === 'doomed' ? 503 : 200;
      res.end();
    });
    const { workspaceId, webhookId } = await workspaceWithWebhook(system, endpoint.url);
    await publish(system, contactCreated('doomed', workspaceId));
    await publish(system, contactCreated('after', workspaceId));

    const requests = await endpoint.waitForRequests(5);
    // 100 + 200 + 300 ms = 600 ms: the 4th attempt is still within the limit, there is no 5th.
    assert.deepEqual(requests.map((r) => JSON.parse(r.body).id), ['doomed', 'doomed', 'doomed', 'doomed', 'after']);
    const records = await attemptRecords(system.prefix, workspaceId, webhookId, 5);
    const last = records.filter((r) => r.eventId === 'doomed').at(-1)!;
    assert.equal(last.attemptNumber, 4);
    assert.equal(last.decision, AttemptDecision.ATTEMPT_DECISION_DROPPED);
    assert.match(last.dropReason, /attempts exhausted/);
  });

  it('counts a redirect as a failure and does not follow it', async () => {
    const target = await receiver();
    const endpoint = await receiver((_req, res, index) => {
      if (index === 0) {
        res.writeHead(302, { location: target.url });
        res.end();
      } else res.end('ok');
    });
    const { workspaceId, webhookId } = await workspaceWithWebhook(system, endpoint.url);
    await publish(system, contactCreated('moved', workspaceId));
    await endpoint.waitForRequests(2);
    const records = await attemptRecords(system.prefix, workspaceId, webhookId, 2);
    assert.equal(records[0]!.failureReason, 'redirect (status 302) not followed');
    assert.equal(records[1]!.decision, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED);
    assert.equal(target.requests.length, 0);
  });

  it('counts an endpoint that trickles its answer byte by byte past the deadline as a failure', async () => {
    const endpoint = await receiver((_req, res, index) => {
      if (index > 0) return void res.end('ok');
      // Status and headers at once, then one byte every 50 ms: only the whole response counts.
      res.writeHead(200, { 'content-type': 'text/plain' });
      let sent = 0;
      const timer = setInterval(() => {
        if (res.destroyed || sent++ > 40) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write('.');
      }, 50);
    });
    const { workspaceId, webhookId } = await workspaceWithWebhook(system, endpoint.url);
    await publish(system, contactCreated('trickle', workspaceId));
    await endpoint.waitForRequests(2);
    const records = await attemptRecords(system.prefix, workspaceId, webhookId, 2);
    assert.match(records[0]!.failureReason, /^timeout: no complete response within 400 ms/);
    assert.equal(records[1]!.decision, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED);
  });

  it('counts an endpoint that does not answer within the deadline as a failure', async () => {
    const endpoint = await receiver((_req, res, index) => {
      if (index > 0) res.end('ok');
      // The first request is never answered.
    });
    const { workspaceId, webhookId } = await workspaceWithWebhook(system, endpoint.url);
    await publish(system, contactCreated('slow', workspaceId));
    await endpoint.waitForRequests(2);
    const records = await attemptRecords(system.prefix, workspaceId, webhookId, 2);
    assert.match(records[0]!.failureReason, /^timeout: no complete response within 400 ms/);
    assert.equal(records[0]!.statusCode, 0);
    assert.equal(records[1]!.decision, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED);
  });
});

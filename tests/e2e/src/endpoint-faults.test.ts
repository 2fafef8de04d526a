// Hostile endpoints during load, in the real topology: one that accepts the connection and never
// answers, one that answers byte by byte past the deadline, one that returns a 10 MB body, one that
// redirects to an internal address, next to a healthy one. Every accepted event is either delivered or
// dropped by the retry rules, each webhook sees its events in order, the redirect is never followed,
// and once the faults end every attempt is in the delivery log. The schedule is scaled down.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DeliveryStatus, type Event } from '@webhooks/contracts';
import { callUnary, HttpReceiver, startSystem, testToken, type RunningSystem } from '@webhooks/testing';
import { contactCreated, finalDeliveries, workspaceWithWebhook } from './support.js';

const attemptTimeoutMs = 500;
const perWebhook = 3;

/** A TCP server that accepts every connection, reads nothing and never answers. */
async function silentServer(): Promise<{ url: string; connections: () => number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.pause();
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    connections: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function eventIds(name: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${name}_${String(i).padStart(2, '0')}`);
}

/** Request bodies' event ids in arrival order, with immediate repeats (retries of one event) folded. */
function arrivalOrder(receiver: HttpReceiver, path = '/hook'): string[] {
  const ids = receiver.requests.filter((r) => r.path === path).map((r) => (JSON.parse(r.body) as { id: string }).id);
  return ids.filter((id, i) => i === 0 || ids[i - 1] !== id);
}

describe('hostile endpoints during load', () => {
  let system: RunningSystem;
  let silent: Awaited<ReturnType<typeof silentServer>>;
  const receivers: HttpReceiver[] = [];

  before(async () => {
    system = await startSystem({ ATTEMPT_TIMEOUT: `${attemptTimeoutMs}ms`, RETRY_DELAYS: '100ms,200ms,300ms', GIVE_UP_AFTER: '3s', BREAKER_THRESHOLD: '1000' });
    silent = await silentServer();
  });

  after(async () => {
    await system?.stop();
    await silent?.close();
    for (const receiver of receivers) await receiver.close();
  });

  it('delivers to the healthy and the 10 MB endpoints in order, drops by the rules elsewhere, follows no redirect, and logs every attempt', async () => {
    const internal = await HttpReceiver.start();
    const healthy = await HttpReceiver.start();
    const trickle = await HttpReceiver.start((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => res.write('.'), 100);
      res.on('close', () => clearInterval(timer));
      setTimeout(() => {
        clearInterval(timer);
        res.end();
      }, attemptTimeoutMs * 4);
    });
    const huge = await HttpReceiver.start((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.alloc(10 * 1024 * 1024, 'x'));
    });
    const redirect = await HttpReceiver.start((_req, res) => {
      res.writeHead(302, { location: `${internal.url}/latest/meta-data/` });
      res.end();
    });
    receivers.push(internal, healthy, trickle, huge, redirect);

    const endpoints = {
      healthy: { url: healthy.url, events: 20 },
      huge: { url: huge.url, events: perWebhook },
      silent: { url: silent.url, events: perWebhook },
      trickle: { url: trickle.url, events: perWebhook },
      redirect: { url: redirect.url, events: perWebhook },
    };
    const hooks = Object.fromEntries(
      await Promise.all(Object.entries(endpoints).map(async ([name, e]) => [name, { ...(await workspaceWithWebhook(system, e.url)), ids: eventIds(name, e.events) }] as const)),
    );
    // All of them at once, in one call per webhook, so the hostile endpoints work while the others deliver.
    await Promise.all(
      Object.values(hooks).map((hook) => {
        const events: Event[] = hook.ids.map((id) => contactCreated(id, hook.workspaceId));
        return callUnary(system.ingest, system.ingest.publishEvents, { events }, testToken);
      }),
    );

    // Delivered, in order: the healthy endpoint and the one with the 10 MB answer (read up to the
    // excerpt, the rest discarded within the deadline).
    for (const [name, receiver] of [['healthy', healthy], ['huge', huge]] as const) {
      const logged = await finalDeliveries(system, hooks[name]!.workspaceId, hooks[name]!.webhookId, hooks[name]!.ids.length);
      assert.deepEqual(arrivalOrder(receiver), hooks[name]!.ids, `order at the ${name} endpoint`);
      assert.deepEqual(logged.map((d) => d.eventId), hooks[name]!.ids);
      for (const delivery of logged) {
        assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED, `${name} ${delivery.eventId}`);
        assert.equal(delivery.attempts.length, delivery.attemptCount);
        assert.ok(delivery.attempts.at(-1)!.responseExcerpt.length <= 4096);
      }
    }

    // Dropped after four attempts each, with the reason of every attempt in the log.
    const expectedReasons: Record<string, RegExp> = {
      silent: /^timeout: no complete response within 500 ms$/,
      trickle: /^timeout: no complete response within 500 ms$/,
      redirect: /^redirect \(status 302\) not followed$/,
    };
    for (const [name, reason] of Object.entries(expectedReasons)) {
      const logged = await finalDeliveries(system, hooks[name]!.workspaceId, hooks[name]!.webhookId, perWebhook);
      assert.deepEqual(logged.map((d) => d.eventId), hooks[name]!.ids, `every ${name} event is in the log`);
      for (const delivery of logged) {
        assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_DROPPED, `${name} ${delivery.eventId}`);
        assert.match(delivery.dropReason, /^attempts exhausted/);
        assert.deepEqual(delivery.attempts.map((a) => a.number), [1, 2, 3, 4], `${name} ${delivery.eventId} attempts`);
        for (const attempt of delivery.attempts) assert.match(attempt.failureReason, reason);
      }
      // One event at a time, in order: each event's first attempt starts after the previous event's last.
      for (let i = 1; i < logged.length; i++) {
        assert.ok(logged[i]!.attempts[0]!.startTime!.getTime() >= logged[i - 1]!.attempts.at(-1)!.startTime!.getTime(), `${name}: ${logged[i]!.eventId} began before ${logged[i - 1]!.eventId} ended`);
      }
    }
    assert.deepEqual(arrivalOrder(trickle), hooks.trickle!.ids);
    assert.deepEqual(arrivalOrder(redirect), hooks.redirect!.ids);
    assert.equal(silent.connections() >= 1, true);
    assert.equal(internal.requests.length, 0, 'the redirect to the internal address was followed');

    // Nothing crashed along the way.
    for (const [name, list] of system.services) for (const service of list) assert.ok(service.running, `${name} exited`);
  });
});

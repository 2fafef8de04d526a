// The write-coalescing hook against a real NATS server: it must still install on the pinned client (a
// client upgrade that changes the internals fails here, not silently in production), put the commands
// of one event-loop turn into one socket write, and keep publishes and requests working.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { coalesceWrites } from './write-coalescing.js';

const natsUrl = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

/** Counts the frames the connection hands to its socket. */
function countWrites(nc: NatsConnection): () => number {
  const transport = (nc as unknown as { protocol: { transport: { send(frame: Uint8Array): void } } }).protocol.transport;
  const send = transport.send.bind(transport);
  let writes = 0;
  transport.send = (frame) => {
    writes++;
    send(frame);
  };
  return () => writes;
}

/** 100 publishes, each in its own microtask of one event-loop turn, as awaited handlers produce them. */
async function publishAcrossMicrotasks(nc: NatsConnection, subject: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    await Promise.resolve();
    nc.publish(subject, `m${i}`);
  }
}

describe('coalesceWrites', () => {
  let plain: NatsConnection;
  let coalesced: NatsConnection;
  const subject = `coalesce.${process.pid}.${Date.now()}`;

  before(async () => {
    plain = await connect({ servers: natsUrl });
    coalesced = await connect({ servers: natsUrl });
    assert.equal(coalesceWrites(coalesced), true, 'the hook no longer fits the NATS client; see write-coalescing.ts');
  });

  after(async () => {
    await plain?.close();
    await coalesced?.close();
  });

  it('writes the commands of one event-loop turn at once, where the plain client writes each', async () => {
    const plainWrites = countWrites(plain);
    const coalescedWrites = countWrites(coalesced);
    await publishAcrossMicrotasks(plain, subject);
    await publishAcrossMicrotasks(coalesced, subject);
    await Promise.all([plain.flush(), coalesced.flush()]);
    assert.ok(plainWrites() >= 100, `the plain client wrote ${plainWrites()} times`);
    assert.ok(coalescedWrites() <= 2, `the coalescing client wrote ${coalescedWrites()} times`);
  });

  it('delivers every message, in order, and answers requests', async () => {
    const received: string[] = [];
    const sub = plain.subscribe(`${subject}.order`, { callback: (_err, msg) => void received.push(msg.string()) });
    const service = plain.subscribe(`${subject}.echo`, { callback: (_err, msg) => void msg.respond(msg.data) });
    await plain.flush();
    await publishAcrossMicrotasks(coalesced, `${subject}.order`);
    const reply = await coalesced.request(`${subject}.echo`, 'ping', { timeout: 2_000 });
    await coalesced.flush();
    await plain.flush();
    assert.equal(reply.string(), 'ping');
    assert.deepEqual(received, Array.from({ length: 100 }, (_, i) => `m${i}`));
    sub.unsubscribe();
    service.unsubscribe();
  });

  it('leaves a connection alone when its internals are not the expected ones', () => {
    assert.equal(coalesceWrites({} as NatsConnection), false);
  });
});

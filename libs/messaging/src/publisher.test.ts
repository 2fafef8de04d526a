// The JetStream publisher against a real NATS server: what a stream answers (stored, duplicate, refused),
// what happens without a stream or without an answer, and many publishes in flight at once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { JetStreamPublisher, PublishError } from './publisher.js';

const natsUrl = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

describe('JetStreamPublisher', () => {
  const run = `pub_${process.pid}_${Date.now().toString(36)}`;
  const stream = `${run}_stream`;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let publisher: JetStreamPublisher;

  before(async () => {
    nc = await connect({ servers: natsUrl });
    jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${run}.s.>`] });
    publisher = new JetStreamPublisher(nc, 300);
  });

  after(async () => {
    publisher?.close();
    await jsm?.streams.delete(stream).catch(() => undefined);
    await nc?.close();
  });

  it('resolves with the stream and sequence once stored, and stores the headers it was given', async () => {
    const trace = headers();
    trace.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    const ack = await publisher.publish(`${run}.s.a`, new TextEncoder().encode('one'), { msgID: `${run}-1`, expectStream: stream, headers: trace });
    assert.deepEqual(ack, { stream, seq: 1, duplicate: false });
    const stored = await jsm.streams.getMessage(stream, { seq: 1 });
    assert.equal(stored!.string(), 'one');
    assert.equal(stored!.header.get('traceparent'), '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.equal(stored!.header.get('Nats-Msg-Id'), `${run}-1`);
    assert.equal(trace.has('Nats-Msg-Id'), false, 'the caller\'s headers were changed');
  });

  it('gives each of several messages sharing one headers object its own id', async () => {
    const shared = headers();
    shared.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    const acks = await Promise.all(['x', 'y'].map((id) => publisher.publish(`${run}.s.shared`, new TextEncoder().encode(id), { msgID: `${run}-shared-${id}`, headers: shared })));
    const stored = await Promise.all(acks.map((ack) => jsm.streams.getMessage(stream, { seq: ack.seq })));
    assert.deepEqual(stored.map((m) => [m!.string(), m!.header.get('Nats-Msg-Id'), m!.header.get('traceparent')]), [
      ['x', `${run}-shared-x`, shared.get('traceparent')],
      ['y', `${run}-shared-y`, shared.get('traceparent')],
    ]);
  });

  it('reports a repeated message id as a duplicate without storing it again', async () => {
    const before = (await jsm.streams.info(stream)).state.messages;
    const ack = await publisher.publish(`${run}.s.a`, new TextEncoder().encode('one again'), { msgID: `${run}-1` });
    assert.deepEqual(ack, { stream, seq: 1, duplicate: true });
    assert.equal((await jsm.streams.info(stream)).state.messages, before);
  });

  it('rejects with the stream\'s error when the subject belongs to another stream than expected', async () => {
    await assert.rejects(publisher.publish(`${run}.s.b`, new Uint8Array([1]), { expectStream: 'some_other_stream' }), (error: unknown) => {
      assert.ok(error instanceof PublishError);
      assert.equal(error.code, 10060); // JSStreamNotMatchErr
      assert.match(error.message, /expected stream does not match/);
      return true;
    });
  });

  it('rejects with 503 from the server when no stream stores the subject', async () => {
    // 503 is the server's answer; the publisher's own timeout would reject with 408.
    await assert.rejects(publisher.publish(`${run}.nowhere`, new Uint8Array([1])), (error: unknown) => error instanceof PublishError && error.code === 503 && /no stream stores/.test(error.message));
  });

  it('rejects with 408 when a subscriber takes the message but nothing acknowledges it', async () => {
    const silent = nc.subscribe(`${run}.silent`, { callback: () => undefined });
    await nc.flush();
    await assert.rejects(publisher.publish(`${run}.silent`, new Uint8Array([1])), (error: unknown) => error instanceof PublishError && error.code === 408);
    assert.equal(publisher.inFlight, 0);
    silent.unsubscribe();
  });

  it('matches 2,000 concurrent publishes to their own acknowledgements', async () => {
    const acks = await Promise.all(Array.from({ length: 2_000 }, (_, i) => publisher.publish(`${run}.s.many.${i % 7}`, new TextEncoder().encode(String(i)), { msgID: `${run}-many-${i}` })));
    // Each acknowledgement names the sequence its own message was stored under.
    const checks = await Promise.all([0, 999, 1_999].map((i) => jsm.streams.getMessage(stream, { seq: acks[i]!.seq })));
    assert.deepEqual(checks.map((m) => m!.string()), ['0', '999', '1999']);
    assert.equal(new Set(acks.map((ack) => ack.seq)).size, 2_000);
    assert.equal(publisher.inFlight, 0);
  });

  it('rejects what is still waiting when closed, and refuses to publish on a closed connection', async () => {
    const own = await connect({ servers: natsUrl });
    const closing = new JetStreamPublisher(own, 5_000);
    const silent = own.subscribe(`${run}.silent2`, { callback: () => undefined });
    await own.flush();
    const waiting = closing.publish(`${run}.silent2`, new Uint8Array([1]));
    await own.close();
    await assert.rejects(waiting, (error: unknown) => error instanceof PublishError && error.code === 503);
    await assert.rejects(closing.publish(`${run}.s.a`, new Uint8Array([1])), (error: unknown) => error instanceof PublishError && /closed/.test(error.message));
    void silent;
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AttemptRecord } from '@webhooks/contracts';
import { topology, type JetStreamPublisher } from '@webhooks/messaging';
import { DeferredAcks } from './deferred-acks.js';
import { RecordBatches } from './record-batches.js';

/** A message that counts its acks. */
const message = () => {
  const counted = { acks: 0, ack: () => void counted.acks++ };
  return counted;
};

describe('deferred acks', () => {
  it('sends nothing at once, every waiting ack on flush, and each ack once', () => {
    const acks = new DeferredAcks(60_000);
    const [a, b] = [message(), message()];
    acks.add(a);
    acks.add(b);
    assert.deepEqual([a.acks, b.acks, acks.size], [0, 0, 2]);
    acks.flush();
    acks.flush();
    assert.deepEqual([a.acks, b.acks, acks.size], [1, 1, 0]);
  });

  it('sends an ack no record batch took along after the wait', async () => {
    const acks = new DeferredAcks(5);
    const a = message();
    acks.add(a);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(a.acks, 1);
    // A later ack starts a new wait.
    const b = message();
    acks.add(b);
    assert.equal(b.acks, 0);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(b.acks, 1);
  });

  it('gives an ack added after a flush its whole wait, though the timer started before', async () => {
    const acks = new DeferredAcks(40);
    acks.add(message());
    await new Promise((resolve) => setTimeout(resolve, 30));
    // A record batch took the first along; the next ack comes 30 ms into the timer's 40.
    acks.flush();
    const b = message();
    acks.add(b);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(b.acks, 0, 'not sent when the earlier timer ran out');
    await new Promise((resolve) => setTimeout(resolve, 40));
    assert.equal(b.acks, 1, 'sent once its own wait was over');
  });

  it('goes out in the same turn as the next record batch, before its publish', async () => {
    const order: string[] = [];
    const publisher = {
      publish: async () => {
        order.push('batch published');
        return { stream: 's', seq: 1, duplicate: false };
      },
    } as unknown as JetStreamPublisher;
    // The acks wait far longer than the test: only the batch can take them along.
    const batches = new RecordBatches(publisher, topology({ prefix: 'acks' }), undefined, new DeferredAcks(60_000));
    batches.acks.add({ ack: () => order.push('earlier task acked') });
    await batches.add(0, AttemptRecord.fromPartial({ deliveryId: 'd1', attemptNumber: 1 }), () => {});
    assert.deepEqual(order, ['earlier task acked', 'batch published']);
  });
});

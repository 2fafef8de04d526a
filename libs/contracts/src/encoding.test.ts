// The shared writer gives the bytes a fresh writer gives, whatever was encoded before.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AttemptRecord, DeliveryTask } from './gen/webhooks/v1/bus.js';
import { encodeMessage } from './encoding.js';

const task = (body: Buffer): DeliveryTask => ({
  eventId: 'evt_1', workspaceId: 'ws_1', webhookId: 'wh_1', eventType: 'contact.created', occurredAt: new Date(1_700_000_000_000),
  acceptedAt: new Date(1_700_000_000_500), body, deliveryId: '', retryOfDeliveryId: '',
});

describe('encodeMessage', () => {
  it('matches a fresh writer for a large message, then a small one, then another type', () => {
    for (const message of [task(Buffer.alloc(300_000, 7)), task(Buffer.from('{}'))]) {
      assert.deepEqual(encodeMessage(DeliveryTask, message), DeliveryTask.encode(message).finish());
    }
    const record = AttemptRecord.fromPartial({ eventId: 'evt_1', attemptNumber: 2, requestHeaders: { 'webhook-id': 'evt_1' }, body: Buffer.from([1, 2, 3]) });
    assert.deepEqual(encodeMessage(AttemptRecord, record), AttemptRecord.encode(record).finish());
  });

  it('returns bytes that later encodings do not overwrite', () => {
    const first = encodeMessage(DeliveryTask, task(Buffer.from([1])));
    const copy = Uint8Array.from(first);
    encodeMessage(DeliveryTask, task(Buffer.from([2, 2, 2])));
    assert.deepEqual(first, copy);
  });

  it('starts clean after an encoding that failed half-way', () => {
    // The fields before the body are written when reading it throws.
    const broken = Object.defineProperty({ ...task(Buffer.from([1])) }, 'body', { get: () => { throw new Error('unreadable'); } });
    assert.throws(() => encodeMessage(DeliveryTask, broken));
    const message = task(Buffer.from([9]));
    assert.deepEqual(encodeMessage(DeliveryTask, message), DeliveryTask.encode(message).finish());
  });
});

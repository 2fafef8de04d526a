import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deliveryConsumerConfig, streamConfigs, topology } from './topology.js';

describe('topology', () => {
  it('names everything from the prefix, as DESIGN.md spells it for "wh"', () => {
    const t = topology();
    assert.equal(t.subjects.deliver('ws1', 'wh_1'), 'wh.deliver.ws1.wh_1');
    assert.equal(t.subjects.breakerTripped('ws1'), 'wh.breaker.tripped.ws1');
    assert.equal(t.buckets.routes, 'wh_routes');
    assert.equal(t.buckets.breaker, 'wh_breaker');
    assert.equal(t.keys.webhook('ws1', 'wh_1'), 'wh.ws1.wh_1');
    assert.equal(t.streams.deliver, 'WH_DELIVER');
  });

  it('refuses a prefix that would break subjects or stream names', () => {
    for (const prefix of ['', 'a.b', 'A', '1x', 'a*', 'a b']) assert.throws(() => topology({ prefix }), /messaging prefix/);
  });

  it('keeps accepted events until they are delivered or dropped, and deduplicates within the window', () => {
    const deliver = streamConfigs(topology({ idempotencyWindowMs: 60_000 }))[0]!;
    assert.equal(deliver.retention, 'workqueue');
    assert.equal(deliver.max_age, undefined);
    assert.equal(deliver.duplicate_window, 60_000 * 1_000_000);
  });

  it('hands out one delivery at a time per webhook', () => {
    const config = deliveryConsumerConfig(topology(), 'ws1', 'wh_1', 30_000);
    assert.equal(config.max_ack_pending, 1);
    assert.equal(config.filter_subject, 'wh.deliver.ws1.wh_1');
    assert.equal(config.durable_name, 'deliver_wh_1');
  });
});

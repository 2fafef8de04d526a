import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { deliverShardOf, deliverShards, shardConsumerConfig, streamConfigs, streamNames, topology } from './topology.js';

describe('topology', () => {
  it('names everything from the prefix, as DESIGN.md spells it for "wh"', () => {
    const t = topology();
    assert.equal(t.subjects.deliver('ws1', 'wh_1'), 'wh.deliver.10.ws1.wh_1');
    assert.equal(t.subjects.breakerTripped('ws1'), 'wh.breaker.tripped.ws1');
    assert.equal(t.buckets.routes, 'wh_routes');
    assert.equal(t.buckets.breaker, 'wh_breaker');
    assert.equal(t.keys.webhook('ws1', 'wh_1'), 'wh.ws1.wh_1');
    assert.equal(t.streams.deliver('wh_1'), 'WH_DELIVER_10');
    assert.deepEqual(streamNames(t), [...Array.from({ length: 16 }, (_, shard) => `WH_DELIVER_${shard}`), 'WH_ATTEMPTS', 'WH_BREAKER']);
  });

  it('puts a webhook in the same delivery stream in every version (FNV-1a of its id)', () => {
    // Pinned: queued tasks are looked for by this function, so it may never change.
    assert.deepEqual(['', 'wh_1', 'wh_01JDQ8Z6K3V7Y2N4M5P6R7S8T9'].map(deliverShardOf), [5, 10, 8]);
    const t = topology();
    for (const webhookId of ['wh_1', 'wh_01JDQ8Z6K3V7Y2N4M5P6R7S8T9']) {
      const shard = deliverShardOf(webhookId);
      const config = streamConfigs(t).find((c) => c.name === t.streams.deliver(webhookId))!;
      assert.deepEqual(config.subjects, [`wh.deliver.${shard}.*.*`, `wh.park.${shard}.*.*`]);
      assert.ok(t.subjects.deliver('ws1', webhookId).startsWith(`wh.deliver.${shard}.`));
    }
  });

  it('tells the record batches of a shard from the single records of a webhook, all in the attempts stream', () => {
    const t = topology();
    assert.equal(t.subjects.attemptBatch(3), 'wh.attempts.3');
    assert.equal(t.subjects.attempt('ws1', 'wh_1'), 'wh.attempts.ws1.wh_1');
    assert.deepEqual(
      ['wh.attempts.3', 'wh.attempts.15', 'wh.attempts.ws1.wh_1', 'wh.deliver.3', 'other.attempts.3'].map(t.subjects.isAttemptBatch),
      [true, true, false, false, false],
    );
    assert.deepEqual(streamConfigs(t).find((c) => c.name === t.streams.attempts)!.subjects, ['wh.attempts.>']);
  });

  it('spreads webhooks evenly over the delivery streams', () => {
    const counts = new Array<number>(deliverShards).fill(0);
    const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    for (let i = 0; i < 16_000; i++) {
      const id = `wh_01JDQ${[...randomBytes(21)].map((b) => alphabet[b % 32]).join('')}`;
      counts[deliverShardOf(id)]!++;
    }
    for (const count of counts) assert.ok(count > 800 && count < 1_200, `uneven shards: ${counts.join(', ')}`);
  });

  it('refuses a prefix that would break subjects or stream names', () => {
    for (const prefix of ['', 'a.b', 'A', '1x', 'a*', 'a b']) assert.throws(() => topology({ prefix }), /messaging prefix/);
  });

  it('keeps accepted events until they are delivered or dropped, and deduplicates within the window', () => {
    const delivers = streamConfigs(topology({ idempotencyWindowMs: 60_000 })).filter((c) => c.name!.startsWith('WH_DELIVER_'));
    assert.equal(delivers.length, deliverShards);
    for (const deliver of delivers) {
      assert.equal(deliver.retention, 'workqueue');
      assert.equal(deliver.max_age, undefined);
      assert.equal(deliver.max_msgs, undefined);
      assert.equal(deliver.duplicate_window, 60_000 * 1_000_000);
    }
  });

  it('keys an accepted event so that every valid event id is one valid KV token, distinct per id', () => {
    const t = topology();
    const validKey = /^[-/=.\w]+$/; // the KV client's own rule, plus: no empty token
    const ids = ['evt_1', 'a:b', 'a.b', '.', '..', 'a..b', ':', '-_.:', 'x'.repeat(128), 'A:b.C-d_9'];
    const keys = ids.map((id) => t.keys.acceptedEvent('ws_1', id));
    for (const [i, key] of keys.entries()) {
      assert.match(key, validKey, ids[i]);
      assert.equal(key.split('.').length, 2, `${ids[i]} -> ${key}`);
      assert.ok(key.split('.').every((token) => token.length > 0), `${ids[i]} -> ${key}`);
    }
    assert.equal(new Set(keys).size, ids.length);
    assert.equal(t.keys.acceptedEvent('ws_1', 'evt_1'), 'ws_1.ZXZ0XzE');
    assert.equal(t.buckets.accepted, 'wh_accepted');
  });

  it('refuses an idempotency window NATS would replace with its own defaults', () => {
    for (const idempotencyWindowMs of [0, 999, Number.NaN]) assert.throws(() => topology({ idempotencyWindowMs }), /IDEMPOTENCY_WINDOW\) must be at least 1s/);
  });

  it('keeps a webhook\'s parked tasks in the stream of its new tasks, on a subject no shard consumer reads', () => {
    const t = topology();
    assert.equal(t.subjects.park('ws1', 'wh_1'), 'wh.park.10.ws1.wh_1');
    const stream = streamConfigs(t).find((c) => c.name === t.streams.deliver('wh_1'))!;
    assert.deepEqual(stream.subjects, ['wh.deliver.10.*.*', 'wh.park.10.*.*']);
  });

  it('gives each delivery stream one consumer of its new tasks, which never sees a parked task', () => {
    const t = topology();
    const config = shardConsumerConfig(t, 10, 30_000, 2_000);
    assert.equal(config.filter_subject, 'wh.deliver.10.*.*');
    assert.equal(config.max_ack_pending, 2_000);
    assert.equal(config.durable_name, 'shard_10');
    assert.ok(!t.subjects.park('ws1', 'wh_1').startsWith('wh.deliver.'), 'parked tasks are not handed out again');
  });
});

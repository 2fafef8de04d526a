// compareAndSet against a real KV bucket: concurrent writers lose no update.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { compareAndSet } from './compare-and-set.js';
import { connectNats, ensureTopology, type Buckets } from './setup.js';
import { streamNames, topology, type Topology } from './topology.js';

describe('compareAndSet', () => {
  let nc: NatsConnection;
  let t: Topology;
  let buckets: Buckets;

  before(async () => {
    nc = await connectNats(process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222', 'cas-test');
    t = topology({ prefix: `cas_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}` });
    ({ buckets } = await ensureTopology(nc, t));
  });

  after(async () => {
    const jsm = await jetstreamManager(nc);
    for (const name of [...streamNames(t), ...Object.values(t.buckets).map((b) => `KV_${b}`)]) await jsm.streams.delete(name).catch(() => false);
    await nc.close();
  });

  it('applies 100 concurrent increments exactly once each', async () => {
    const increment = () =>
      compareAndSet(buckets.breaker, 'counter', (current) => {
        const next = (current ? Number(new TextDecoder().decode(current)) : 0) + 1;
        return { value: new TextEncoder().encode(String(next)), result: next };
      });
    const results = await Promise.all(Array.from({ length: 100 }, increment));
    assert.deepEqual([...results].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i + 1));
    const entry = await buckets.breaker.get('counter');
    assert.equal(new TextDecoder().decode(entry!.value), '100');
  });
});

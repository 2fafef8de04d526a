// ensureTopology against a real NATS server: every service runs it at start, so it must bring an existing
// installation to the configured idempotency window, including the accepted-events bucket, which
// Kvm.create alone leaves as it found it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, ensureTopology, leaseRequestTimeoutMs, whileUnavailable } from './setup.js';
import { streamNames, topology } from './topology.js';

const natsUrl = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
const nanosPerMs = 1_000_000;

describe('ensureTopology', () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const prefix = `st_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;

  before(async () => {
    nc = await connectNats(natsUrl, 'setup-test');
    jsm = await jetstreamManager(nc);
  });

  after(async () => {
    const t = topology({ prefix });
    for (const name of [...streamNames(t), ...Object.values(t.buckets).map((b) => `KV_${b}`)]) await jsm.streams.delete(name).catch(() => false);
    await nc.close();
  });

  async function windows(windowMs: number): Promise<{ bucketMaxAge: number; duplicateWindows: number[] }> {
    const t = topology({ prefix, idempotencyWindowMs: windowMs });
    const bucket = await jsm.streams.info(`KV_${t.buckets.accepted}`);
    const delivers = await Promise.all(t.streams.deliverShards.map((name) => jsm.streams.info(name)));
    return { bucketMaxAge: bucket.config.max_age, duplicateWindows: [...new Set(delivers.map((d) => d.config.duplicate_window))] };
  }

  it('creates the accepted-events bucket on disk with the window as its TTL, and moves an existing one to a new window', async () => {
    const first = topology({ prefix, idempotencyWindowMs: 60_000 });
    const { buckets } = await ensureTopology(nc, first);
    const info = await jsm.streams.info(`KV_${first.buckets.accepted}`);
    assert.equal(info.config.storage, 'file');
    assert.equal(info.config.max_msgs_per_subject, 1);
    assert.deepEqual(await windows(60_000), { bucketMaxAge: 60_000 * nanosPerMs, duplicateWindows: [60_000 * nanosPerMs] });
    assert.equal((await buckets.accepted.status()).ttl, 60_000);

    // What the client does on its own: "creating" the existing bucket with another TTL changes nothing.
    await new Kvm(jetstream(nc)).create(first.buckets.accepted, { history: 1, ttl: 90_000 });
    assert.equal((await jsm.streams.info(`KV_${first.buckets.accepted}`)).config.max_age, 60_000 * nanosPerMs);

    // ensureTopology does: a longer window, then a shorter one than the bucket's default duplicate window.
    await ensureTopology(nc, topology({ prefix, idempotencyWindowMs: 90_000 }));
    assert.deepEqual(await windows(90_000), { bucketMaxAge: 90_000 * nanosPerMs, duplicateWindows: [90_000 * nanosPerMs] });
    await ensureTopology(nc, topology({ prefix, idempotencyWindowMs: 30_000 }));
    assert.deepEqual(await windows(30_000), { bucketMaxAge: 30_000 * nanosPerMs, duplicateWindows: [30_000 * nanosPerMs] });
  });
});

describe('setup steps while JetStream is unavailable', () => {
  const timeout = () => Object.assign(new Error('timeout'), { name: 'TimeoutError' });

  it('tries a step again after a timeout, until it answers', async () => {
    let calls = 0;
    const result = await whileUnavailable(
      async () => {
        if (++calls < 3) throw timeout();
        return 'ready';
      },
      10_000,
      5,
    );
    assert.equal(result, 'ready');
    assert.equal(calls, 3);
  });

  it('throws any other error at once, and a timeout once the budget is spent', async () => {
    let calls = 0;
    await assert.rejects(
      whileUnavailable(async () => {
        calls++;
        throw new Error('stream name already in use with a different configuration');
      }),
      /different configuration/,
    );
    assert.equal(calls, 1, 'not tried again');
    await assert.rejects(whileUnavailable(async () => Promise.reject(timeout()), 50, 5), { name: 'TimeoutError' });
  });
});

describe('leaseRequestTimeoutMs', () => {
  it('gives a lease request a sixth of the lease time, between 500 ms and 5 s', () => {
    assert.equal(leaseRequestTimeoutMs(15_000), 2_500);
    assert.equal(leaseRequestTimeoutMs(6_000), 1_000);
    assert.equal(leaseRequestTimeoutMs(1_500), 500);
    assert.equal(leaseRequestTimeoutMs(120_000), 5_000);
  });
});

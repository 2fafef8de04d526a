// Shard leases between dispatcher replicas, against real NATS KV with a lease time scaled down: replicas
// that start at the same moment never both own a shard, a joining replica gets its share and nobody owns
// a shard twice while it moves, a stopping replica hands its shards over, and a replica cut off from NATS
// stops acting on its shards before anyone else can take them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectNats, deliverShards, ensureDispatchersBucket, type KV, type NatsConnection } from '@webhooks/messaging';
import { createLogger } from '@webhooks/telemetry';
import { createTestTopology, testEnvironment, type TestTopology } from '@webhooks/testing';
import { ShardOwnership, type ShardHandler } from '../src/ownership.js';

const logger = createLogger('ownership-test', 'silent');
const leaseTtlMs = 1_500;

/** A replica's ownership with a handler that keeps the shards it was told to consume. */
function replica(kv: KV, test: TestTopology, id: string) {
  const consuming = new Set<number>();
  const handler: ShardHandler = {
    async acquired(shards) {
      for (const shard of shards) consuming.add(shard);
    },
    async released(shards) {
      for (const shard of shards) consuming.delete(shard);
    },
  };
  const ownership = new ShardOwnership(kv, test.topology, id, { leaseTtlMs, shardCount: deliverShards }, handler, logger);
  return { id, ownership, consuming };
}

type Replica = ReturnType<typeof replica>;

/**
 * Every shard is consumed by at most one replica; returns how many each consumes. A replica that lost
 * NATS (`fenced`) counts by owns() alone: its loops check it before every task, and its handler is told
 * to stop at its next heartbeat.
 */
function assertExclusive(replicas: readonly Replica[], fenced: ReadonlySet<string> = new Set()): number[] {
  for (let shard = 0; shard < deliverShards; shard++) {
    const owners = replicas.filter((r) => r.ownership.owns(shard) || (!fenced.has(r.id) && r.consuming.has(shard))).map((r) => r.id);
    assert.ok(owners.length <= 1, `shard ${shard} is consumed by ${owners.join(' and ')}`);
  }
  return replicas.map((r) => r.consuming.size);
}

/** Samples exclusivity every 20 ms until `done` holds (or `timeoutMs` passes). */
async function watchUntil(replicas: () => readonly Replica[], done: () => boolean, timeoutMs: number, what: string, fenced?: ReadonlySet<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    assertExclusive(replicas(), fenced);
    if (done()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${replicas().map((r) => `${r.id}=${[...r.consuming].join(',')}`).join(' ')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const covered = (replicas: readonly Replica[]) => replicas.reduce((sum, r) => sum + r.consuming.size, 0) === deliverShards;

describe('shard ownership on real NATS KV', () => {
  let test: TestTopology;
  let kv: KV;
  const started: Replica[] = [];

  before(async () => {
    test = await createTestTopology();
    kv = await ensureDispatchersBucket(test.nc, test.topology, leaseTtlMs);
  });

  after(async () => {
    for (const r of started) await r.ownership.stop().catch(() => undefined);
    await test?.remove();
  });

  it('shares the shards among replicas that start at the same moment, each shard owned once', async () => {
    const replicas = ['a', 'b', 'c'].map((id) => replica(kv, test, id));
    started.push(...replicas);
    // All three see an empty bucket and race for every shard: the leases' compare-and-set decides.
    await Promise.all(replicas.map((r) => r.ownership.start()));
    assertExclusive(replicas);
    await watchUntil(() => replicas, () => covered(replicas) && replicas.every((r) => r.consuming.size >= 5), 10_000, 'an even spread');
    assert.deepEqual(assertExclusive(replicas).sort(), [5, 5, 6]);
  });

  it('gives a joining replica its share, never two owners of a shard while it moves', async () => {
    const joining = replica(kv, test, 'd');
    started.push(joining);
    await joining.ownership.start();
    await watchUntil(() => started, () => covered(started) && joining.consuming.size === 4, 10_000, 'the newcomer\'s share');
    assert.deepEqual(assertExclusive(started).sort(), [4, 4, 4, 4]);
  });

  it('hands a stopping replica\'s shards to the others at their next heartbeat', async () => {
    const leaving = started.pop()!;
    await leaving.ownership.stop();
    assert.equal(leaving.consuming.size, 0);
    await watchUntil(() => started, () => covered(started), 5_000, 'the others taking over');
    assert.deepEqual(assertExclusive(started).sort(), [5, 5, 6]);
  });

  it('stops a replica cut off from NATS before its shards are taken over', async () => {
    // A fourth replica on its own connection, which is then closed: it can no longer renew.
    const nc: NatsConnection = await connectNats(testEnvironment.natsUrl, 'ownership-test-isolated');
    const isolatedKv = await ensureDispatchersBucket(nc, test.topology, leaseTtlMs);
    const isolated = replica(isolatedKv, test, 'e');
    await isolated.ownership.start();
    const all = [...started, isolated];
    await watchUntil(() => all, () => isolated.consuming.size === 4, 10_000, 'the isolated replica\'s share');
    const itsShards = [...isolated.consuming];
    await nc.close();
    const fenced = new Set(['e']);
    // Fencing by time: it stops acting on its shards on its own, and nobody else has them meanwhile.
    await watchUntil(() => all, () => itsShards.every((shard) => !isolated.ownership.owns(shard)), 5_000, 'the isolated replica to stop trusting its leases', fenced);
    await watchUntil(() => all, () => started.reduce((sum, r) => sum + r.consuming.size, 0) === deliverShards, 10_000, 'the others taking the shards over', fenced);
    assert.equal(isolated.consuming.size, 0, 'its handler was told to stop');
    await isolated.ownership.stop().catch(() => undefined);
  });
});

// Shard leases between dispatcher replicas, against real NATS KV with a lease time scaled down: replicas
// that start at the same moment never both own a shard, a joining replica gets its share and nobody owns
// a shard twice while it moves, a stopping replica hands its shards over, and a replica cut off from NATS
// stops acting on its shards before anyone else can take them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectNats, deliverShards, ensureDispatchersBucket, type KV, type NatsConnection } from '@webhooks/messaging';
import { createLogger } from '@webhooks/telemetry';
import { createTestTopology, testEnvironment, timeoutError, withReplaced, type TestTopology } from '@webhooks/testing';
import { ShardOwnership, type ShardHandler } from '../src/ownership.js';

const logger = createLogger('ownership-test', 'silent');
const leaseTtlMs = 1_500;
/** Requests under a lease last at most this: the trust leaves room for it (time-budget.ts). */
const attemptTimeoutMs = 250;

/** A replica's ownership with a handler that keeps the shards it was told to consume. */
function replica(kv: KV, test: TestTopology, id: string, attempts = attemptTimeoutMs) {
  const consuming = new Set<number>();
  /** Every shard the handler was told to stop, in order. */
  const released: number[] = [];
  const handler: ShardHandler = {
    async acquired(shards) {
      for (const shard of shards) consuming.add(shard);
    },
    async released(shards) {
      released.push(...shards);
      for (const shard of shards) consuming.delete(shard);
    },
  };
  const ownership = new ShardOwnership(kv, test.topology, id, { leaseTtlMs, shardCount: deliverShards, attemptTimeoutMs: attempts }, handler, logger);
  return { id, ownership, consuming, released };
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
    // Its handler is told to stop once the leases have surely expired on the server (their last renewal's
    // answer plus the lease time): until then the shards only paused.
    await watchUntil(() => all, () => isolated.consuming.size === 0, 3 * leaseTtlMs, 'its handler to be told to stop', fenced).finally(() => isolated.ownership.stop().catch(() => undefined));
  });
});

const faultyKv = (kv: KV, faults: Partial<Pick<KV, 'update' | 'put' | 'get' | 'keys'>>): KV => withReplaced(kv, faults);

describe('shard ownership under request faults', () => {
  let test: TestTopology;
  let kv: KV;
  const replicas: Replica[] = [];

  before(async () => {
    test = await createTestTopology();
    kv = await ensureDispatchersBucket(test.nc, test.topology, leaseTtlMs);
  });

  after(async () => {
    for (const r of replicas) await r.ownership.stop().catch(() => undefined);
    await test?.remove();
  });

  it('consumes a shard it took in a heartbeat that failed on another shard', async () => {
    // The replica held shard 1 before (a restart within the lease time), so its first heartbeat renews
    // shard 1 and takes the free ones; the renewal times out once.
    await kv.put(test.topology.keys.shardLease(1), new TextEncoder().encode('x'));
    let failed = 0;
    const faulty = faultyKv(kv, {
      update: async (key, value, revision) => {
        if (key === test.topology.keys.shardLease(1) && failed++ === 0) throw timeoutError();
        return kv.update(key, value, revision);
      },
    });
    const x = replica(faulty, test, 'x');
    replicas.push(x);
    await x.ownership.start();
    assert.equal(failed, 1, 'the renewal of shard 1 failed in the first heartbeat');
    // Before the fix the shards taken in that heartbeat were renewed forever and never consumed.
    await watchUntil(() => replicas, () => x.consuming.size === deliverShards, 5_000, 'every shard consumed');
    await x.ownership.stop();
    replicas.pop();
  });

  it('counts a take whose reply was lost as taken at the next heartbeat', async () => {
    let lost = 0;
    const faulty = faultyKv(kv, {
      put: async (key, value, options) => {
        const revision = await kv.put(key, value, options);
        if (key === test.topology.keys.shardLease(3) && lost++ === 0) throw timeoutError();
        return revision;
      },
    });
    const y = replica(faulty, test, 'y');
    replicas.push(y);
    await y.ownership.start();
    assert.equal(lost, 1);
    await watchUntil(() => replicas, () => y.consuming.size === deliverShards, 5_000, 'every shard consumed, the one whose reply was lost too');
    await y.ownership.stop();
    replicas.pop();
  });

  it('keeps its leases through a heartbeat whose request is never answered', async () => {
    let hung = 0;
    let hang = false;
    const faulty = faultyKv(kv, {
      keys: (filter) => {
        if (hang && hung === 0) {
          hung++;
          return new Promise(() => {});
        }
        return kv.keys(filter);
      },
    });
    const z = replica(faulty, test, 'z');
    replicas.push(z);
    await z.ownership.start();
    await watchUntil(() => replicas, () => z.consuming.size === deliverShards, 5_000, 'every shard consumed');
    // From now on the next membership listing never answers (a request lost during an election).
    hang = true;
    const untrusted = new Set<number>();
    const until = Date.now() + 3 * leaseTtlMs;
    while (Date.now() < until) {
      for (let shard = 0; shard < deliverShards; shard++) if (!z.ownership.owns(shard)) untrusted.add(shard);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(hung, 1, 'the listing hung once');
    // Before, the heartbeat waited for that answer for ever: every lease lapsed and was never renewed again.
    assert.deepEqual([...untrusted], [], 'no lease went untrusted');
    assert.equal(z.consuming.size, deliverShards);
    await z.ownership.stop();
    replicas.pop();
  });

  it('pauses its shards, without giving them up, while one heartbeat\'s renewals fail', async () => {
    // Requests may last 500 ms: the trust (900 ms after a renewal's start) ends before the heartbeat after
    // a failed one (1,000 ms), as with the defaults (9.25 s against 10 s).
    let failing: number | undefined;
    let failed = 0;
    let arm = false;
    const faulty = faultyKv(kv, {
      update: (key, value, revision) => {
        if (arm && failing === undefined) failing = Date.now();
        if (failing !== undefined && Date.now() - failing < 200) {
          failed++;
          return Promise.reject(timeoutError());
        }
        return kv.update(key, value, revision);
      },
    });
    const p = replica(faulty, test, 'p', 500);
    replicas.push(p);
    await p.ownership.start();
    await watchUntil(() => replicas, () => p.consuming.size === deliverShards, 5_000, 'every shard consumed');
    arm = true;
    const untrusted = new Set<number>();
    const until = Date.now() + 4 * (leaseTtlMs / 3);
    while (Date.now() < until) {
      for (let shard = 0; shard < deliverShards; shard++) if (!p.ownership.owns(shard)) untrusted.add(shard);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(failed >= deliverShards, `one heartbeat's renewals failed (${failed} failed updates)`);
    assert.equal(untrusted.size, deliverShards, 'every lease went untrusted between the failed renewal and the next: nothing was started meanwhile');
    // Before, a lapsed lease was dropped at the next heartbeat: the shards were stopped and taken again.
    assert.deepEqual(p.released, [], 'no shard was stopped');
    for (let shard = 0; shard < deliverShards; shard++) assert.ok(p.ownership.owns(shard), `shard ${shard} trusted again after the next renewal`);
    await p.ownership.stop();
    replicas.pop();
  });

  it('keeps renewing its other leases while the shards it hands over take 8 s to stop', async () => {
    const a = replica(kv, test, 'a');
    replicas.push(a);
    await a.ownership.start();
    await watchUntil(() => replicas, () => a.consuming.size === deliverShards, 5_000, 'a holding every shard');
    // From now on every shard a hands over takes 8 s to stop (its attempts in flight, its ack wait).
    const slowHandler = a.ownership as unknown as { handler: ShardHandler };
    const plain = slowHandler.handler.released.bind(slowHandler.handler);
    slowHandler.handler = { ...slowHandler.handler, released: async (shards) => {
      await new Promise((resolve) => setTimeout(resolve, 8_000));
      await plain(shards);
    } };
    const b = replica(kv, test, 'b');
    replicas.push(b);
    const untrusted = new Map<number, number>();
    await b.ownership.start();
    const deadline = Date.now() + 14_000;
    while (Date.now() < deadline) {
      assertExclusive(replicas);
      for (let shard = 0; shard < deliverShards; shard++) if (!a.ownership.owns(shard)) untrusted.set(shard, (untrusted.get(shard) ?? 0) + 1);
      if (b.consuming.size === deliverShards / 2 && a.consuming.size === deliverShards / 2) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual([a.consuming.size, b.consuming.size], [deliverShards / 2, deliverShards / 2], 'the shards moved once their 8 s handover ended');
    // Before the fix the heartbeat waited for the handover: every lease of a went untrusted after a
    // second, the ones it keeps too, and they were dropped.
    const kept = [...a.consuming];
    assert.deepEqual(kept.filter((shard) => untrusted.has(shard)), [], 'a lease a keeps was untrusted at some moment');
  });
});

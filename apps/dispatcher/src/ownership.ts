// Which delivery shards this dispatcher replica consumes. The rules:
// 1. Membership. Every replica writes `member.<id>` in the dispatchers bucket once per heartbeat (a
//    third of the lease time). The bucket's age limit is the lease time, so the key of a replica that
//    stopped renewing disappears by itself: the live replicas are the member keys present.
// 2. Leases. A shard's webhooks are consumed only by the holder of `lease.<shard>` (value: the holder's
//    id). A lease is taken with compare-and-set on "no entry at that revision" and renewed every heartbeat
//    with compare-and-set on the revision the holder last wrote; a renewal that fails because the entry
//    changed means the lease had expired and someone else took it: the holder stops that shard at once.
// 3. Fencing by time. Between renewals a holder trusts its lease only until the start of its last
//    successful renewal plus the lease time minus one heartbeat. Past that (NATS unreachable) it stops
//    consuming the shard, a heartbeat before the server can expire the lease and another replica take it.
//    The delivery loops also ask owns() before every task they start.
// 4. Assignment. Every replica computes who should hold each shard from the same snapshot of the bucket
//    (assignShards: the live members and the present holders; evenly spread, moving as few shards as it
//    can). A holder that should no longer hold a shard hands it over: it stops consuming it (waiting for
//    the attempt in flight), then deletes its lease with compare-and-set; the desired owner takes it at
//    its next heartbeat. Replicas that briefly see different memberships cannot both hold a shard: the
//    lease's compare-and-set decides.
// 5. Leaving. A replica stopped with SIGTERM hands over every shard and removes its membership, so the
//    others take over at their next heartbeat. A replica that dies is replaced once its leases expire:
//    within one lease time and one heartbeat (15 s + 5 s by default), plus starting the shard's consumers.
// 6. Order per webhook holds through every move: a shard's lanes stop before its lease is given up, and
//    the next owner recreates the shard's consumer, so tasks still handed out to the previous one come
//    back at once and in order (consumers.ts).
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { JetStreamApiError, type KV, type Topology } from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import { assignShards } from './shard-assignment.js';

/** What a replica does when it gains or loses shards. */
export interface ShardHandler {
  /** Start consuming these shards' webhooks. */
  acquired(shards: readonly number[]): Promise<void>;
  /** Stop consuming them; resolves once no attempt of theirs is in flight here. */
  released(shards: readonly number[]): Promise<void>;
}

export interface OwnershipSettings {
  readonly leaseTtlMs: number;
  readonly shardCount: number;
}

interface Held {
  /** The revision of the lease entry this replica last wrote. */
  revision: number;
  /** Until when this replica may act on the lease without renewing it (rule 3). */
  validUntil: number;
}

// The server's answers to a compare-and-set whose expected revision is stale.
const wrongLastSequence: ReadonlySet<number> = new Set([10071, 10164]);

function isConflict(error: unknown): boolean {
  return error instanceof JetStreamApiError && wrongLastSequence.has(error.code);
}

/** An id for this process: the host (the pod's name on Kubernetes) and a random part, as one key token. */
export function newReplicaId(): string {
  return `${hostname().replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48)}-${randomBytes(3).toString('hex')}`;
}

export class ShardOwnership {
  private readonly held = new Map<number, Held>();
  private readonly heartbeatMs: number;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private failing = false;

  constructor(
    private readonly kv: KV,
    private readonly topology: Topology,
    readonly replicaId: string,
    private readonly settings: OwnershipSettings,
    private readonly handler: ShardHandler,
    private readonly logger: Logger,
  ) {
    this.heartbeatMs = Math.max(100, Math.floor(settings.leaseTtlMs / 3));
  }

  /** Whether this replica holds the shard's lease now (and may start a task of it). */
  owns(shard: number): boolean {
    const held = this.held.get(shard);
    return held !== undefined && Date.now() < held.validUntil;
  }

  ownedShards(): number[] {
    return [...this.held.keys()].filter((shard) => this.owns(shard)).sort((a, b) => a - b);
  }

  /** Joins: announces this replica, takes its share of the free shards, then keeps heart-beating. */
  async start(): Promise<void> {
    await this.runTick();
  }

  /** Leaves: hands every shard over and removes the membership (rule 5). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking?.catch(() => undefined);
    await this.giveUp(new Map([...this.held.entries()].map(([shard, held]) => [shard, held.revision])), 'stopping');
    await this.kv.delete(this.topology.keys.dispatcher(this.replicaId)).catch(() => undefined);
  }

  /** One heartbeat, supervised: a failure is logged and the next heartbeat comes all the same. */
  private runTick(): Promise<void> {
    this.ticking = this.tick().then(
      () => {
        if (this.failing) this.logger.info({ replica: this.replicaId }, 'shard leases renewed again');
        this.failing = false;
      },
      (error: unknown) => {
        if (!this.failing) this.logger.error({ err: error, replica: this.replicaId }, 'shard lease heartbeat failed; trying again');
        this.failing = true;
      },
    );
    return this.ticking.finally(() => {
      if (!this.stopped) this.timer = setTimeout(() => void this.runTick(), this.heartbeatMs);
    });
  }

  private async tick(): Promise<void> {
    const started = Date.now();
    // Rule 3: a lease not renewed in time is no longer acted on, whatever NATS says later.
    const expired = [...this.held.entries()].filter(([, held]) => held.validUntil <= started).map(([shard]) => shard);
    if (expired.length > 0) await this.drop(expired, 'lease not renewed in time');

    await this.kv.put(this.topology.keys.dispatcher(this.replicaId), new TextEncoder().encode(JSON.stringify({ heartbeat: new Date(started).toISOString() })));
    const members: string[] = [];
    for await (const key of await this.kv.keys(this.topology.keys.dispatchersAll)) members.push(key.slice('member.'.length));
    if (!members.includes(this.replicaId)) members.push(this.replicaId);
    const shards = Array.from({ length: this.settings.shardCount }, (_, shard) => shard);
    const entries = await Promise.all(shards.map((shard) => this.kv.get(this.topology.keys.shardLease(shard))));
    const holders = entries.map((entry) => (entry && entry.operation === 'PUT' && entry.value.length > 0 ? new TextDecoder().decode(entry.value) : undefined));
    const desired = assignShards(this.settings.shardCount, members, holders.map((holder) => (holder && members.includes(holder) ? holder : undefined)));

    const lost: number[] = [];
    const handOver = new Map<number, number>();
    const gained: number[] = [];
    const me = new TextEncoder().encode(this.replicaId);
    await Promise.all(
      shards.map(async (shard) => {
        const entry = entries[shard];
        const holder = holders[shard];
        const key = this.topology.keys.shardLease(shard);
        if (holder === this.replicaId) {
          if (desired[shard] !== this.replicaId) {
            handOver.set(shard, entry!.revision);
            return;
          }
          try {
            const revision = await this.kv.update(key, me, entry!.revision);
            const wasHeld = this.held.has(shard);
            this.held.set(shard, { revision, validUntil: started + this.settings.leaseTtlMs - this.heartbeatMs });
            if (!wasHeld) gained.push(shard);
          } catch (error) {
            if (!isConflict(error)) throw error;
            if (this.held.has(shard)) lost.push(shard);
          }
        } else if (holder === undefined && desired[shard] === this.replicaId) {
          try {
            const revision = await this.kv.put(key, me, { previousSeq: entry?.revision ?? 0 });
            this.held.set(shard, { revision, validUntil: started + this.settings.leaseTtlMs - this.heartbeatMs });
            gained.push(shard);
          } catch (error) {
            if (!isConflict(error)) throw error;
          }
        } else if (this.held.has(shard)) {
          // Someone else holds it now: ours had expired on the server.
          lost.push(shard);
        }
      }),
    );
    if (lost.length > 0) await this.drop(lost, 'lease taken by another replica');
    if (handOver.size > 0) await this.giveUp(handOver, 'handed over');
    if (gained.length > 0) {
      gained.sort((a, b) => a - b);
      this.logger.info({ replica: this.replicaId, shards: gained, members: members.length }, 'shards acquired');
      await this.handler.acquired(gained);
    }
  }

  /** Stops consuming shards whose lease is no longer ours; nothing to give back. */
  private async drop(shards: readonly number[], reason: string): Promise<void> {
    for (const shard of shards) this.held.delete(shard);
    this.logger.warn({ replica: this.replicaId, shards, reason }, 'shards released');
    await this.handler.released(shards);
  }

  /** Stops consuming shards, then deletes their leases (shard to the revision last seen) so the desired owners can take them at once. */
  private async giveUp(leases: ReadonlyMap<number, number>, reason: string): Promise<void> {
    if (leases.size === 0) return;
    const shards = [...leases.keys()].sort((a, b) => a - b);
    for (const shard of shards) this.held.delete(shard);
    this.logger.info({ replica: this.replicaId, shards, reason }, 'shards released');
    await this.handler.released(shards);
    await Promise.all(
      [...leases.entries()].map(([shard, revision]) =>
        this.kv.delete(this.topology.keys.shardLease(shard), { previousSeq: revision }).catch((error: unknown) => {
          // Changed meanwhile: it expired and was taken, which is what handing over wanted anyway.
          if (!isConflict(error)) throw error;
        }),
      ),
    );
  }
}

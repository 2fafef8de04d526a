// Which delivery shards this dispatcher replica consumes. The rules:
// 1. Membership. Every replica writes `member.<id>` in the dispatchers bucket once per heartbeat (a
//    third of the lease time). The bucket's age limit is the lease time, so the key of a replica that
//    stopped renewing disappears by itself: the live replicas are the member keys present.
// 2. Leases. A shard's webhooks are consumed only by the holder of `lease.<shard>` (value: the holder's
//    id). A lease is taken with compare-and-set on "no entry at that revision" and renewed every heartbeat
//    with compare-and-set on the revision the holder last wrote; a renewal that fails because the entry
//    changed means the lease had expired and someone else took it: the holder stops that shard at once.
// 3. Fencing by time. Between renewals a holder trusts its lease only until the start of its last
//    successful renewal plus its trust: the lease time minus ATTEMPT_TIMEOUT minus a margin
//    (time-budget.ts), on the monotonic clock (a step of the wall clock cannot extend a lease). A request
//    is started only while the lease is trusted (fence.ts, asked right before it), so it has ended before
//    the server can expire the lease and another replica take it. Past the trust (NATS unreachable, an
//    election) the shard pauses: nothing of it is started or acked, but its consumer and lanes stay, and a
//    renewal that goes through on the revision last written (nobody took it) resumes it at once. Once the
//    lease has surely expired on the server (the last renewal's answer plus the lease time), the shard is
//    stopped. Writes that may still reach the server after that (nats.js buffers them while it cannot
//    send) are fenced by the server's order, not by this clock: park.ts rule 6.
// 4. Assignment. Every replica computes who should hold each shard from the same snapshot of the bucket
//    (assignShards: the live members and the present holders; evenly spread, moving as few shards as it
//    can). A holder that should no longer hold a shard hands it over: it stops consuming it (waiting for
//    the attempt in flight), then deletes its lease with compare-and-set; the desired owner takes it at
//    its next heartbeat. Replicas that briefly see different memberships cannot both hold a shard: the
//    lease's compare-and-set decides. Leases are read from the bucket's stream leader, never by a direct
//    get a follower may answer: a follower still catching up would show a holder an old entry, and it
//    would drop a shard it holds.
// 5. Leaving. A replica stopped with SIGTERM hands over every shard and removes its membership, so the
//    others take over at their next heartbeat. A replica that dies is replaced once its leases expire:
//    within one lease time and one heartbeat (15 s + 5 s by default), plus starting the shard's consumers.
// 6. Order per webhook holds through every move: a shard's lanes stop before its lease is given up, and
//    the next owner recreates the shard's consumer, so tasks still handed out to the previous one come
//    back at once and in order (shard-consumer.ts).
// 7. Renewals never wait for shard work. The heartbeat decides and writes leases only; starting and
//    stopping shards (the handler) runs beside it, one call after another per shard, so a slow handover
//    (its attempts in flight, its ack wait) or a slow takeover (consumer set-up, the recall) never delays
//    the renewal of the other leases. A shard being handed over is no longer acted on (owns() is false at
//    once), but its lease is still renewed until its consumption has stopped and the lease is deleted, so
//    no other replica can take it while an attempt of it is in flight here.
// 8. Every held lease is consumed. A shard taken is started even when the same heartbeat failed on
//    another shard (a timeout, a 503, a lost reply): each heartbeat starts every held shard not yet
//    started, and a failure of one shard's request never stops the others' decisions.
// 9. Renewal comes first in each heartbeat: the leases held (and those being handed over) are renewed
//    on the revision last written, before the membership is written and listed and the assignment is
//    computed, so a failure of those (a listing left unanswered during an election) lets no lease lapse.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { isWriteConflict, type KV, type Topology } from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import { assignShards } from './shard-assignment.js';
import { leaseTrustMs } from './time-budget.js';

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
  /** How long a request started under a lease may last (ATTEMPT_TIMEOUT): the trust leaves room for it (rule 3). */
  readonly attemptTimeoutMs: number;
}

interface Held {
  /** The revision of the lease entry this replica last wrote. */
  revision: number;
  /** Until when this replica may act on the lease without renewing it (rule 3). */
  validUntil: number;
  /** By when the lease has surely expired on the server unless renewed: the last renewal's answer plus the lease time. */
  expiresBy: number;
}

/** An id for this process: the host (the pod's name on Kubernetes) and a random part, as one key token. */
export function newReplicaId(): string {
  return `${hostname().replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48)}-${randomBytes(3).toString('hex')}`;
}

/** Resolves as `work` does, or rejects once `ms` have passed: no request may hold a heartbeat for ever. */
function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** Awaits one step of a heartbeat within its deadline; a failure says which step it was. */
async function step<T>(name: string, work: Promise<T>, deadlineMs: number): Promise<T> {
  try {
    return await withDeadline(work, deadlineMs, name);
  } catch (error) {
    throw new Error(`${name}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** The monotonic clock leases are trusted by (rule 3). */
const monotonicNow = () => performance.now();

export class ShardOwnership {
  private readonly held = new Map<number, Held>();
  /** Shards the handler was told to start and not yet to stop (rule 8). */
  private readonly started = new Set<number>();
  /** Shards being handed over, to the revision of their lease last written: kept alive, not acted on, until deleted (rule 7). */
  private readonly leaving = new Map<number, number>();
  /** Each shard's handler calls, one after another (rule 7); an entry goes once its chain is idle. */
  private readonly work = new Map<number, Promise<void>>();
  private readonly heartbeatMs: number;
  /** How long after a renewal's start requests may start under the lease (rule 3). */
  private readonly trustMs: number;
  /** Shards whose trust lapsed without a renewal, paused (rule 3): logged once per lapse. */
  private readonly paused = new Set<number>();
  /** How long one step of a heartbeat may take (half a heartbeat): no request holds the rhythm for long. */
  private readonly stepDeadlineMs: number;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopping = false;
  private stopped = false;
  private failing = false;

  constructor(
    private readonly kv: KV,
    private readonly topology: Topology,
    readonly replicaId: string,
    private readonly settings: OwnershipSettings,
    private readonly handler: ShardHandler,
    private readonly logger: Logger,
    private readonly now: () => number = monotonicNow,
  ) {
    this.heartbeatMs = Math.max(100, Math.floor(settings.leaseTtlMs / 3));
    this.trustMs = leaseTrustMs(settings.leaseTtlMs, settings.attemptTimeoutMs);
    this.stepDeadlineMs = Math.max(50, Math.floor(this.heartbeatMs / 2));
  }

  /** Whether this replica holds the shard's lease now (and may start a task of it). */
  owns(shard: number): boolean {
    const held = this.held.get(shard);
    return held !== undefined && this.now() < held.validUntil;
  }

  ownedShards(): number[] {
    return [...this.held.keys()].filter((shard) => this.owns(shard)).sort((a, b) => a - b);
  }

  /** Joins: announces this replica, takes its share of the free shards, then keeps heart-beating. */
  async start(): Promise<void> {
    await this.runTick();
  }

  /** Resolves once every handler call asked for so far has ended (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.work.size > 0) await Promise.all(this.work.values());
  }

  /**
   * Leaves (rule 5): leaves the membership first, so the others plan without this replica, hands every
   * shard over while the heartbeat keeps their leases alive, and stops heart-beating once all are deleted.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.ticking?.catch(() => undefined);
    await this.kv.delete(this.topology.keys.dispatcher(this.replicaId)).catch(() => undefined);
    this.giveUp(new Map([...this.held.entries()].map(([shard, held]) => [shard, held.revision])), 'stopping');
    await this.settled();
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking?.catch(() => undefined);
  }

  /** One heartbeat, supervised: a failure is logged and the next heartbeat comes all the same. */
  private runTick(): Promise<void> {
    const startedAt = this.now();
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
      // The rhythm counts from each heartbeat's start, so a slow one does not push the next renewal back.
      if (!this.stopped) this.timer = setTimeout(() => void this.runTick(), Math.max(0, startedAt + this.heartbeatMs - this.now()));
    });
  }

  /** Runs one handler call for a shard after the ones asked for before it (rule 7). */
  private enqueue(shard: number, call: () => Promise<void>): void {
    const next = (this.work.get(shard) ?? Promise.resolve())
      .then(call)
      .catch((error: unknown) => this.logger.error({ err: error, replica: this.replicaId, shard }, 'starting or stopping a shard failed'))
      .finally(() => {
        if (this.work.get(shard) === next) this.work.delete(shard);
      });
    this.work.set(shard, next);
  }

  private async tick(): Promise<void> {
    const started = this.now();
    // Rule 3: a lease past its trust pauses its shard (and one surely expired on the server stops it,
    // below, unless this heartbeat's renewal still went through).
    const lapsed = [...this.held.entries()].filter(([shard, held]) => held.validUntil <= started && !this.paused.has(shard)).map(([shard]) => shard);
    if (lapsed.length > 0) {
      for (const shard of lapsed) this.paused.add(shard);
      this.logger.warn({ replica: this.replicaId, shards: lapsed }, 'shard leases not renewed in time; their shards pause until a renewal goes through');
    }

    // Rule 9: the leases held are renewed first, by themselves; the membership and the assignment below
    // may fail (a listing during an election) without a lease lapsing for it.
    const me = new TextEncoder().encode(this.replicaId);
    const validUntil = started + this.trustMs;
    const renewedHeld = (revision: number): Held => ({ revision, validUntil, expiresBy: this.now() + this.settings.leaseTtlMs });
    const renewed = new Set<number>();
    const renewalLost: number[] = [];
    const renewing = [...this.held.entries(), ...[...this.leaving.entries()].map(([shard, revision]) => [shard, { revision }] as const)];
    const renewals = await Promise.allSettled(
      renewing.map(async ([shard, held]) => {
        const revision = await withDeadline(this.renew(shard, held.revision, me), this.stepDeadlineMs, 'lease renewal');
        if (revision === undefined) {
          if (this.held.has(shard)) renewalLost.push(shard);
          return;
        }
        renewed.add(shard);
        if (this.leaving.has(shard)) this.leaving.set(shard, revision);
        else if (this.held.has(shard)) this.held.set(shard, renewedHeld(revision));
      }),
    );
    const resumed = [...this.paused].filter((shard) => renewed.has(shard) && this.held.has(shard));
    if (resumed.length > 0) {
      for (const shard of resumed) this.paused.delete(shard);
      this.logger.info({ replica: this.replicaId, shards: resumed }, 'shard leases renewed again; their shards resume');
    }
    if (renewalLost.length > 0) this.drop(renewalLost, 'lease taken by another replica');
    const expired = [...this.held.entries()].filter(([shard, held]) => !renewed.has(shard) && held.expiresBy <= this.now()).map(([shard]) => shard);
    if (expired.length > 0) this.drop(expired, 'lease expired on the server without a renewal');

    if (!this.stopping) await step('membership write', this.kv.put(this.topology.keys.dispatcher(this.replicaId), new TextEncoder().encode(JSON.stringify({ heartbeat: new Date().toISOString() }))), this.stepDeadlineMs);
    const members: string[] = [];
    await step('membership list', (async () => {
      for await (const key of await this.kv.keys(this.topology.keys.dispatchersAll)) members.push(key.slice('member.'.length));
    })(), this.stepDeadlineMs);
    if (this.stopping) members.splice(0, members.length, ...members.filter((member) => member !== this.replicaId));
    else if (!members.includes(this.replicaId)) members.push(this.replicaId);
    const shards = Array.from({ length: this.settings.shardCount }, (_, shard) => shard);
    // A lease that cannot be read this time is left as it is (rule 8): neither renewed nor taken nor dropped.
    const reads = await Promise.allSettled(shards.map((shard) => withDeadline(this.kv.get(this.topology.keys.shardLease(shard)), this.stepDeadlineMs, 'lease read')));
    const entries = reads.map((read) => (read.status === 'fulfilled' ? read.value : undefined));
    const holders = entries.map((entry) => (entry && entry.operation === 'PUT' && entry.value.length > 0 ? new TextDecoder().decode(entry.value) : undefined));
    const desired = assignShards(this.settings.shardCount, members, holders.map((holder) => (holder && members.includes(holder) ? holder : undefined)));

    const lost: number[] = [];
    const handOver = new Map<number, number>();
    const outcomes = await Promise.allSettled(
      shards.map(async (shard) => {
        if (reads[shard]!.status === 'rejected') throw (reads[shard] as PromiseRejectedResult).reason;
        const entry = entries[shard];
        const holder = holders[shard];
        const key = this.topology.keys.shardLease(shard);
        // Kept alive until its handover has stopped consuming it and deletes it (rule 7).
        if (this.leaving.has(shard)) return;
        if (holder === this.replicaId) {
          if (desired[shard] !== this.replicaId) {
            handOver.set(shard, this.held.get(shard)?.revision ?? entry!.revision);
            return;
          }
          if (renewed.has(shard)) return;
          try {
            const revision = await withDeadline(this.kv.update(key, me, entry!.revision), this.stepDeadlineMs, 'lease renewal');
            this.held.set(shard, renewedHeld(revision));
            this.paused.delete(shard);
          } catch (error) {
            if (!isWriteConflict(error)) throw error;
            if (this.held.has(shard)) lost.push(shard);
          }
        } else if (holder === undefined && desired[shard] === this.replicaId) {
          try {
            const revision = await withDeadline(this.kv.put(key, me, { previousSeq: entry?.revision ?? 0 }), this.stepDeadlineMs, 'lease take');
            this.held.set(shard, renewedHeld(revision));
          } catch (error) {
            if (!isWriteConflict(error)) throw error;
          }
        } else if (this.held.has(shard)) {
          // Someone else holds it now: ours had expired on the server.
          lost.push(shard);
        }
      }),
    );
    if (lost.length > 0) this.drop(lost, 'lease taken by another replica');
    if (handOver.size > 0) this.giveUp(handOver, 'handed over');
    // Rule 8: every lease held and trusted is consumed, whatever else this heartbeat met.
    const gained = [...this.held.keys()].filter((shard) => !this.started.has(shard) && this.owns(shard)).sort((a, b) => a - b);
    if (gained.length > 0) {
      this.logger.info({ replica: this.replicaId, shards: gained, members: members.length }, 'shards acquired');
      for (const shard of gained) {
        this.started.add(shard);
        this.enqueue(shard, () => this.handler.acquired([shard]));
      }
    }
    const failures = [
      ...renewals.flatMap((outcome, i) => (outcome.status === 'rejected' ? [{ shard: renewing[i]![0], error: outcome.reason as unknown }] : [])),
      ...outcomes.flatMap((outcome, shard) => (outcome.status === 'rejected' ? [{ shard, error: outcome.reason as unknown }] : [])),
    ];
    if (failures.length > 0) {
      const first = failures[0]!.error;
      throw new AggregateError(failures.map((f) => f.error), `lease reads or writes failed for shards ${failures.map((f) => f.shard).join(', ')}: ${first instanceof Error ? first.message : String(first)}`);
    }
  }

  /**
   * Renews one lease on the revision this replica last wrote; returns the new revision, or undefined when
   * another replica holds it now. A conflict may also mean this replica's own last write went through with
   * its answer lost: the entry, read from the leader, tells, and then the renewal is made on its revision.
   */
  private async renew(shard: number, revision: number, me: Uint8Array): Promise<number | undefined> {
    const key = this.topology.keys.shardLease(shard);
    try {
      return await this.kv.update(key, me, revision);
    } catch (error) {
      if (!isWriteConflict(error)) throw error;
    }
    const entry = await this.kv.get(key);
    if (!entry || entry.operation !== 'PUT' || new TextDecoder().decode(entry.value) !== this.replicaId) return undefined;
    try {
      return await this.kv.update(key, me, entry.revision);
    } catch (error) {
      if (!isWriteConflict(error)) throw error;
      return undefined;
    }
  }

  /**
   * Deletes a lease this replica hands over, on the revision it last wrote. A conflict means either that
   * another replica holds it now (nothing to do) or that a renewal of this replica's own moved it on
   * meanwhile: the entry tells, and then the delete is made on its revision.
   */
  private async release(shard: number, revision: number): Promise<void> {
    const key = this.topology.keys.shardLease(shard);
    try {
      await this.kv.delete(key, { previousSeq: revision });
      return;
    } catch (error) {
      if (!isWriteConflict(error)) throw error;
    }
    const entry = await this.kv.get(key);
    if (!entry || entry.operation !== 'PUT' || new TextDecoder().decode(entry.value) !== this.replicaId) return;
    await this.kv.delete(key, { previousSeq: entry.revision }).catch((error: unknown) => {
      if (!isWriteConflict(error)) throw error;
    });
  }

  /** Stops consuming shards whose lease is no longer ours; nothing to give back. */
  private drop(shards: readonly number[], reason: string): void {
    for (const shard of shards) {
      this.held.delete(shard);
      this.paused.delete(shard);
    }
    this.logger.warn({ replica: this.replicaId, shards, reason }, 'shards released');
    for (const shard of shards) this.stopShard(shard);
  }

  private stopShard(shard: number): void {
    if (!this.started.delete(shard)) return;
    this.enqueue(shard, () => this.handler.released([shard]));
  }

  /**
   * Stops consuming shards, then deletes their leases (shard to the revision last seen) so the desired
   * owners can take them at once; beside the heartbeat (rule 7).
   */
  private giveUp(leases: ReadonlyMap<number, number>, reason: string): void {
    if (leases.size === 0) return;
    const shards = [...leases.keys()].sort((a, b) => a - b);
    for (const shard of shards) {
      this.held.delete(shard);
      this.paused.delete(shard);
    }
    this.logger.info({ replica: this.replicaId, shards, reason }, 'shards released');
    for (const [shard, revision] of leases) {
      this.leaving.set(shard, revision);
      this.stopShard(shard);
      this.enqueue(shard, async () => {
        try {
          await withDeadline(this.release(shard, this.leaving.get(shard) ?? revision), this.stepDeadlineMs, 'lease delete');
        } catch (error) {
          // The lease then expires on the server by itself.
          this.logger.warn({ err: error, replica: this.replicaId, shard }, 'a handed-over lease could not be deleted; it expires by itself');
        } finally {
          this.leaving.delete(shard);
        }
      });
    }
  }
}

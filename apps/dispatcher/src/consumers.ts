// How the owner of a delivery shard (ownership.ts) consumes it: the front the ownership and the
// composition root talk to. Where a task goes next:
//   shard consumer (shard-consumer.ts): one durable consumer per shard, recreated by each new owner
//     -> lane (lanes.ts): the webhook's tasks in order, one attempt at a time (dispatch.ts)
//        -> park (park.ts): a webhook that must wait (a retry's delay, a slow endpoint, a long backlog)
//           has its tasks stored on its park subject and read back one at a time, until none is left.
// Every start and ack asks the fence (fence.ts), and every loop that fails is restarted after a backoff
// and reported to readiness meanwhile (loop-health.ts).
//
// Disabled or deleted webhooks: a task taken for a webhook that is not deliverable is dropped with a
// record by the handler. A parked webhook that becomes undeliverable has its park read at once (park.ts
// rule 5).
import type { Route } from '@webhooks/contracts';
import type { JetStreamClient, JetStreamManager, JetStreamPublisher, RouteChange, RoutingTable, Topology } from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import type { Suspensions } from './breaker.js';
import { ShardFence } from './fence.js';
import { Lanes, type DeliveryHandler } from './lanes.js';
import { LoopHealth } from './loop-health.js';
import type { ShardHandler } from './ownership.js';
import { Parks } from './park.js';
import { ShardConsumers } from './shard-consumer.js';

export type { DeliveryHandler } from './lanes.js';
export { laneMaxHeld } from './lanes.js';
export { shardMaxAckPending, shardRequestTimeoutMs } from './shard-consumer.js';

export class DeliveryConsumers implements ShardHandler {
  private readonly shards: ShardConsumers;
  private readonly lanes: Lanes;
  private readonly parks: Parks;
  private readonly fence: ShardFence;

  constructor(
    js: JetStreamClient,
    jsm: JetStreamManager,
    publisher: JetStreamPublisher,
    private readonly topology: Topology,
    private readonly routes: RoutingTable,
    ackWaitMs: number,
    handle: DeliveryHandler,
    private readonly suspensions: Suspensions,
    logger: Logger,
    /** Told how many loops are down whenever that changes (readiness). */
    onLoopsDown: (down: number) => void = () => {},
    /** Whether this replica owns a delivery shard now (ownership.ts); every shard without ownership. */
    owns: (shard: number) => boolean = () => true,
    /** Recalls a shard's successes stored since a server time (dispatch.ts); returns how many. */
    recall: (shard: number, sinceMs: number) => Promise<number> = async () => 0,
    /** How often the stall watch looks at each shard consumer (shard-consumer.ts rule 6). */
    stallCheckIntervalMs?: number,
  ) {
    const health = new LoopHealth(onLoopsDown);
    this.shards = new ShardConsumers(js, jsm, topology, ackWaitMs, () => this.lanes, () => this.parks, () => this.fence, health, recall, logger, stallCheckIntervalMs);
    const fence = new ShardFence(owns, (shard) => this.shards.consuming(shard));
    this.fence = fence;
    this.parks = new Parks(jsm, publisher, topology, handle, () => this.lanes, fence, health, (shard) => this.shards.consuming(shard), logger, (shard) => this.shards.parkFence(shard));
    this.lanes = new Lanes(handle, this.shards, this.parks, fence, health, ackWaitMs, logger);
  }

  /** Whether a task of the shard may start now (fence.ts): waits while the lease's renewal is late. */
  mayAct(shard: number): Promise<boolean> {
    return this.fence.mayAct(shard);
  }

  /** Follows every shard (a replica without ownership, e.g. in tests). */
  async startAll(): Promise<void> {
    await this.acquire(this.topology.streams.deliverShards.map((_, shard) => shard));
  }

  /** Starts consuming newly owned shards. */
  acquired(shards: readonly number[]): Promise<void> {
    return this.acquire(shards);
  }

  /** Stops consuming these shards; resolves once none of their attempts runs here. */
  released(shards: readonly number[]): Promise<void> {
    return this.release(shards);
  }

  acquire(shards: readonly number[]): Promise<void> {
    return this.shards.acquire(shards);
  }

  release(shards: readonly number[]): Promise<void> {
    return this.shards.release(shards);
  }

  /** After the NATS connection came back: every shard loop starts again. Park readers need nothing: their reads failed while NATS was away, and they try again by themselves. */
  resume(): void {
    this.shards.resume();
  }

  /** Shards consumed here, lanes in memory, and of those the parked ones. */
  counts(): { shards: number; lanes: number; parked: number } {
    return { shards: this.shards.size, ...this.lanes.counts() };
  }

  onRouteChange(change: RouteChange): void {
    if (change.kind !== 'webhook') return;
    this.refresh(change.workspaceId, change.webhookId);
    // After the refresh: a parked task of the deleted webhook is dropped by its reader all the same.
    if (!change.route) this.suspensions.forget(change.webhookId);
  }

  /** Re-reads one webhook's state, e.g. after a trip suspended it (park.ts rule 5). */
  refresh(_workspaceId: string, webhookId: string): void {
    const lane = this.lanes.get(webhookId);
    if (!lane?.parked || !this.shards.consuming(lane.shard) || this.deliverable(this.routes.route(lane.workspaceId, lane.webhookId))) return;
    this.parks.wake(lane);
  }

  /** Stops taking new deliveries and waits for the attempts in progress. */
  stop(): Promise<void> {
    return this.shards.stop();
  }

  private deliverable(route: Route | undefined): boolean {
    return !!route?.active && !this.suspensions.isSuspended(route);
  }
}

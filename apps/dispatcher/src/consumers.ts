// One durable pull consumer per active webhook of the shards this replica owns (ownership.ts), following
// the routing table; max_ack_pending 1 on the server keeps it to one event in flight per webhook across
// every replica, also while a shard moves. A shard's webhooks are started when it is acquired and stopped
// (waiting for the attempt in flight) when it is released. When a webhook is disabled or deleted, its
// loop stops at once and its owner alone drains the events still queued for it: each is dropped and
// recorded (the consumer is reset first, so a task waiting for its retry delay is released
// immediately), then the consumer is removed until the webhook is active. Acquiring a shard also drains
// what was queued for webhooks disabled or deleted while no replica owned it.
//
// Supervision: a delivery loop that ends while its webhook is still followed (the handler threw, the
// consume iterator failed) is logged, counted (webhook.delivery_loop.restarts) and started again after a
// backoff that doubles per consecutive failure (200 ms up to 10 s); meanwhile readiness reports the
// webhooks whose loop is down. The task in hand when a loop failed is handed back with the backoff as
// its delay. `failures` and `down` (keyed by webhook) lose a webhook's entry once its loop delivers a
// task again, or once the webhook is no longer deliverable here.
import { deliverShardOf, deliveryConsumerConfig, ensureConsumer, JetStreamApiError, type Consumer, type JetStreamClient, type JetStreamManager, type JsMsg, type RouteChange, type RoutingTable, type Topology } from '@webhooks/messaging';
import type { Route } from '@webhooks/contracts';
import type { Logger } from '@webhooks/telemetry';
import type { Suspensions } from './breaker.js';
import { dispatcherMetrics } from './metrics.js';

interface Loop {
  readonly workspaceId: string;
  done: Promise<void>;
  stop(): void;
  stopped: boolean;
}

/** Handles one task; resolves to false when the task was handed back instead (the webhook changed). */
export type DeliveryHandler = (message: JsMsg) => Promise<boolean>;

const followRetryMs = 1_000;
const followRetryMaxMs = 10_000;
const restartInitialMs = 200;
const restartMaxMs = 10_000;
const pullBatch = 32;
/**
 * An idle webhook's pull stays open this long and the server confirms it every idleHeartbeatMs (the
 * client's defaults). Longer pulls cost the server less while idle (10,000 idle webhooks: 4.7 % of a core
 * with 90 s pulls and 30 s heartbeats against 6.6 % with these), but the client also waits up to one pull
 * time between its tries to find the consumer again after a reconnect, so a NATS restart then stalls
 * delivery for up to 90 s. Cheap idleness comes from fewer consumers, not longer pulls.
 */
const idlePullMs = 30_000;
const idleHeartbeatMs = 15_000;
/**
 * Consumer creations and drains in flight at once. A replica that takes over thousands of webhooks would
 * otherwise send every creation at the same moment, and JetStream's API answers none of them in time.
 */
const maxConsumerOperations = 16;

/** Runs at most `slots` of the given operations at a time, in the order they were asked for. */
function limiter(slots: number) {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(operation: () => Promise<T>): Promise<T> => {
    if (running >= slots) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    try {
      return await operation();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

export class DeliveryConsumers {
  private readonly loops = new Map<string, Loop>();
  /** Route changes of one webhook are applied one after another. */
  private readonly pending = new Map<string, Promise<void>>();
  private closed = false;
  /** Consecutive loop failures per webhook, for the restart backoff. */
  private readonly failures = new Map<string, number>();
  /** Webhooks whose loop failed and is waiting to be restarted. */
  private readonly down = new Set<string>();
  /** Consecutive failed routing steps per webhook, for their retry backoff; removed when a step succeeds. */
  private readonly followFailures = new Map<string, number>();
  private readonly consumerOperation = limiter(maxConsumerOperations);

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly topology: Topology,
    private readonly routes: RoutingTable,
    private readonly ackWaitMs: number,
    private readonly handle: DeliveryHandler,
    private readonly suspensions: Suspensions,
    private readonly logger: Logger,
    /** Told how many webhooks' loops are down whenever that changes (readiness). */
    private readonly onLoopsDown: (down: number) => void = () => {},
    /** Whether this replica owns a delivery shard now (ownership.ts); every shard without ownership. */
    private readonly owns: (shard: number) => boolean = () => true,
  ) {}

  /** Re-reads one webhook's state, e.g. after a trip suspended it. */
  refresh(workspaceId: string, webhookId: string): void {
    if (!this.closed) this.enqueue(workspaceId, webhookId);
  }

  private deliverable(route: Route | undefined): boolean {
    return !!route?.active && !this.suspensions.isSuspended(route);
  }

  /** Follows every shard (a replica without ownership, e.g. in tests). */
  async startAll(): Promise<void> {
    await this.acquire(this.topology.streams.deliverShards.map((_, shard) => shard));
  }

  /**
   * Starts the webhooks of newly owned shards, and drains what is queued there for webhooks that were
   * disabled or deleted while nobody owned the shard (their consumers, and their queued subjects).
   */
  async acquire(shards: readonly number[]): Promise<void> {
    const owned = new Set(shards);
    for (const route of this.routes.allRoutes()) if (owned.has(deliverShardOf(route.webhookId))) this.enqueue(route.workspaceId, route.webhookId);
    for (const shard of shards) {
      const stream = this.topology.streams.deliverShards[shard]!;
      const stale = new Map<string, string>();
      for await (const info of this.jsm.consumers.list(stream)) {
        const [, , , workspaceId, webhookId] = (info.config.filter_subject ?? '').split('.');
        if (workspaceId && webhookId) stale.set(webhookId, workspaceId);
      }
      const { state } = await this.jsm.streams.info(stream, { subjects_filter: this.topology.subjects.deliverShard(shard) });
      for (const subject of Object.keys(state.subjects ?? {})) {
        const [, , , workspaceId, webhookId] = subject.split('.');
        if (workspaceId && webhookId) stale.set(webhookId, workspaceId);
      }
      for (const [webhookId, workspaceId] of stale) {
        if (!this.deliverable(this.routes.route(workspaceId, webhookId))) this.enqueue(workspaceId, webhookId);
      }
    }
  }

  /** Stops the webhooks of shards this replica no longer owns; resolves once none of their attempts runs. */
  async release(shards: readonly number[]): Promise<void> {
    const released = new Set(shards);
    const affected = new Set<string>();
    for (const webhookId of [...this.loops.keys(), ...this.pending.keys()]) if (released.has(deliverShardOf(webhookId))) affected.add(webhookId);
    await Promise.all([...affected].map((webhookId) => this.pending.get(webhookId)));
    await Promise.all([...affected].map((webhookId) => this.stopLoop(webhookId)));
  }

  /**
   * After the connection to NATS came back. The client finds each consumer again by itself, but after a
   * failed try it waits up to a pull time (30 s) before the next, and right after a server restart the
   * first try often fails. Restarting the loops instead (16 consumer creations at a time, each retried
   * within a second or two) resumes delivery as soon as JetStream answers.
   */
  /** How many webhooks' loops run here. */
  running(): number {
    return this.loops.size;
  }

  resume(): void {
    if (this.closed) return;
    for (const [webhookId, loop] of this.loops) {
      loop.stopped = true;
      loop.stop();
      this.enqueue(loop.workspaceId, webhookId);
    }
  }

  onRouteChange(change: RouteChange): void {
    if (change.kind !== 'webhook' || this.closed) return;
    this.enqueue(change.workspaceId, change.webhookId);
  }

  /** Stops taking new deliveries and waits for the attempts in progress. */
  async stop(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pending.values()]);
    await Promise.all([...this.loops.keys()].map((webhookId) => this.stopLoop(webhookId)));
  }

  /** Brings this webhook's consumer in line with the routing table as it is when the step runs. */
  private enqueue(workspaceId: string, webhookId: string): void {
    const previous = this.pending.get(webhookId) ?? Promise.resolve();
    const next = previous
      .then(() => this.follow(workspaceId, webhookId, this.routes.route(workspaceId, webhookId)))
      .then(() => {
        this.followFailures.delete(webhookId);
      })
      .catch((error: unknown) => {
        const failures = (this.followFailures.get(webhookId) ?? 0) + 1;
        this.followFailures.set(webhookId, failures);
        const retryInMs = Math.min(followRetryMaxMs, followRetryMs * 2 ** (failures - 1));
        this.logger.error({ err: error, webhookId, retryInMs }, 'following a routing change failed; trying again');
        setTimeout(() => !this.closed && this.enqueue(workspaceId, webhookId), retryInMs).unref();
      })
      .finally(() => {
        if (this.pending.get(webhookId) === next) this.pending.delete(webhookId);
      });
    this.pending.set(webhookId, next);
  }

  private async follow(workspaceId: string, webhookId: string, route: Route | undefined): Promise<void> {
    if (this.closed) return;
    if (!this.owns(deliverShardOf(webhookId))) {
      // Another replica's: it follows this webhook (and drains it) itself.
      this.failures.delete(webhookId);
      this.markUp(webhookId);
      await this.stopLoop(webhookId);
      return;
    }
    if (this.deliverable(route)) {
      if (this.loops.get(webhookId)?.stopped) await this.stopLoop(webhookId);
      if (!this.loops.has(webhookId)) await this.startLoop(workspaceId, webhookId);
      this.markUp(webhookId);
      return;
    }
    this.failures.delete(webhookId);
    this.markUp(webhookId);
    await this.stopLoop(webhookId);
    await this.consumerOperation(() => this.drain(workspaceId, webhookId));
  }

  private async openConsumer(workspaceId: string, webhookId: string): Promise<Consumer> {
    const stream = this.topology.streams.deliver(webhookId);
    const config = deliveryConsumerConfig(this.topology, workspaceId, webhookId, this.ackWaitMs);
    // One request: the creation (a no-op for an existing consumer) answers with what consuming needs.
    return this.js.consumers.getConsumerFromInfo(await ensureConsumer(this.jsm, stream, { ...config, durable_name: config.durable_name! }));
  }

  private async deleteConsumer(webhookId: string): Promise<void> {
    await this.jsm.consumers.delete(this.topology.streams.deliver(webhookId), this.topology.consumers.delivery(webhookId)).catch((error: unknown) => {
      if (!(error instanceof JetStreamApiError && error.status === 404)) throw error;
    });
  }

  private async startLoop(workspaceId: string, webhookId: string): Promise<void> {
    // The server hands out one task at a time (max_ack_pending 1) whatever the pull asks for; a larger
    // pull only saves re-issuing a pull request after every task.
    const messages = await this.consumerOperation(async () =>
      (await this.openConsumer(workspaceId, webhookId)).consume({ max_messages: pullBatch, expires: idlePullMs, idle_heartbeat: idleHeartbeatMs }),
    );
    const loop: Loop = { workspaceId, stopped: false, done: Promise.resolve(), stop: () => messages.stop() };
    const shard = deliverShardOf(webhookId);
    loop.done = (async () => {
      for await (const message of messages) {
        // A message that arrives while stopping, or after the shard's lease ran out, goes back at once
        // instead of waiting out ack_wait.
        if (loop.stopped) {
          message.nak();
          continue;
        }
        if (!this.owns(shard)) {
          // The shard's lease ran out before a heartbeat released it: hand the task back, stop this loop
          // and let the routing step decide (released, or renewed and started again).
          message.nak();
          loop.stopped = true;
          messages.stop();
          this.enqueue(workspaceId, webhookId);
          continue;
        }
        try {
          await this.handle(message);
        } catch (error) {
          message.nak(this.restartDelay(webhookId));
          throw error;
        }
        this.failures.delete(webhookId);
      }
    })().then(
      () => (loop.stopped ? undefined : this.restart(workspaceId, webhookId, loop, new Error('the consume iterator ended'))),
      (error: unknown) => (loop.stopped ? undefined : this.restart(workspaceId, webhookId, loop, error)),
    );
    this.loops.set(webhookId, loop);
  }

  private restartDelay(webhookId: string): number {
    return Math.min(restartMaxMs, restartInitialMs * 2 ** (this.failures.get(webhookId) ?? 0));
  }

  /** A loop ended on its own: restart it after a backoff, through the routing step (still deliverable?). */
  private restart(workspaceId: string, webhookId: string, loop: Loop, error: unknown): void {
    loop.stopped = true;
    loop.stop();
    if (this.loops.get(webhookId) === loop) this.loops.delete(webhookId);
    const delayMs = this.restartDelay(webhookId);
    this.failures.set(webhookId, (this.failures.get(webhookId) ?? 0) + 1);
    this.down.add(webhookId);
    this.onLoopsDown(this.down.size);
    dispatcherMetrics.deliveryLoopRestarts.add(1);
    this.logger.error({ err: error, webhookId, workspaceId, restartInMs: delayMs }, 'delivery loop ended with an error; restarting it');
    setTimeout(() => !this.closed && this.enqueue(workspaceId, webhookId), delayMs).unref();
  }

  private markUp(webhookId: string): void {
    if (this.down.delete(webhookId)) this.onLoopsDown(this.down.size);
  }

  private async stopLoop(webhookId: string): Promise<void> {
    const loop = this.loops.get(webhookId);
    if (!loop) return;
    this.loops.delete(webhookId);
    loop.stopped = true;
    loop.stop();
    await loop.done;
  }

  /**
   * Drops every task still queued for a disabled or deleted webhook. Recreating the consumer releases
   * a task that waits for its retry delay; the handler records each drop and terminates the task.
   */
  private async drain(workspaceId: string, webhookId: string): Promise<void> {
    const queued = await this.jsm.streams
      .getMessage(this.topology.streams.deliver(webhookId), { last_by_subj: this.topology.subjects.deliver(workspaceId, webhookId) })
      .catch(() => null);
    if (!queued) {
      await this.deleteConsumer(webhookId);
      return;
    }
    await this.deleteConsumer(webhookId);
    const consumer = await this.openConsumer(workspaceId, webhookId);
    let dropped = 0;
    for (;;) {
      const batch = await consumer.fetch({ max_messages: 1, expires: 1_000 });
      let got = false;
      for await (const message of batch) {
        got = true;
        // Active again, or the shard moved to another replica: stop draining; the routing step queued
        // behind this one (or the new owner) takes it from here.
        if (this.deliverable(this.routes.route(workspaceId, webhookId)) || !this.owns(deliverShardOf(webhookId))) {
          message.nak();
          return;
        }
        if (!(await this.handle(message))) return;
        dropped++;
      }
      if (!got) break;
    }
    await this.deleteConsumer(webhookId);
    if (dropped > 0) this.logger.warn({ webhookId, workspaceId, dropped }, 'queued events of a disabled or deleted webhook dropped');
  }
}

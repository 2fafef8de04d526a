// One durable pull consumer per active webhook, following the routing table: created when a webhook
// becomes active, stopped when it is disabled, deleted with the webhook. Every replica consumes every
// webhook; max_ack_pending 1 on the server keeps it to one event in flight per webhook overall.
import { deliveryConsumerConfig, JetStreamApiError, type JetStreamClient, type JetStreamManager, type JsMsg, type RouteChange, type RoutingTable, type Topology } from '@webhooks/messaging';
import type { Route } from '@webhooks/contracts';
import type { Logger } from '@webhooks/telemetry';

type Stoppable = { stop(): void };

interface Loop {
  readonly done: Promise<void>;
  messages?: Stoppable;
  stopped: boolean;
}

export type DeliveryHandler = (message: JsMsg) => Promise<void>;

export class DeliveryConsumers {
  private readonly loops = new Map<string, Loop>();
  /** Route changes of one webhook are applied one after another. */
  private readonly pending = new Map<string, Promise<void>>();
  private closed = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly topology: Topology,
    private readonly ackWaitMs: number,
    private readonly handle: DeliveryHandler,
    private readonly logger: Logger,
  ) {}

  /** Starts a loop for every active webhook the routing table holds now. */
  startAll(routes: RoutingTable): void {
    for (const route of routes.allRoutes()) this.enqueue(route.webhookId, () => this.follow(route.workspaceId, route.webhookId, route));
  }

  onRouteChange(change: RouteChange): void {
    if (change.kind !== 'webhook' || this.closed) return;
    this.enqueue(change.webhookId, () => this.follow(change.workspaceId, change.webhookId, change.route));
  }

  isRunning(webhookId: string): boolean {
    return this.loops.has(webhookId);
  }

  /** Stops taking new deliveries and waits for the attempts in progress. */
  async stop(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.pending.values()]);
    const loops = [...this.loops.keys()];
    await Promise.all(loops.map((webhookId) => this.stopLoop(webhookId)));
  }

  private enqueue(webhookId: string, step: () => Promise<void>): void {
    const previous = this.pending.get(webhookId) ?? Promise.resolve();
    const next = previous
      .then(step)
      .catch((error: unknown) => this.logger.error({ err: error, webhookId }, 'following a routing change failed'))
      .finally(() => {
        if (this.pending.get(webhookId) === next) this.pending.delete(webhookId);
      });
    this.pending.set(webhookId, next);
  }

  private async follow(workspaceId: string, webhookId: string, route: Route | undefined): Promise<void> {
    if (this.closed) return;
    if (route?.active) {
      if (!this.loops.has(webhookId)) await this.startLoop(workspaceId, webhookId);
      return;
    }
    await this.stopLoop(webhookId);
    if (!route) {
      // The webhook is gone: so is its consumer (any replica may get here first).
      await this.jsm.consumers.delete(this.topology.streams.deliver, this.topology.consumers.delivery(webhookId)).catch((error: unknown) => {
        if (!(error instanceof JetStreamApiError && error.status === 404)) throw error;
      });
    }
  }

  private async startLoop(workspaceId: string, webhookId: string): Promise<void> {
    const stream = this.topology.streams.deliver;
    const config = deliveryConsumerConfig(this.topology, workspaceId, webhookId, this.ackWaitMs);
    await this.jsm.consumers.add(stream, config).catch(async (error: unknown) => {
      if (!(error instanceof JetStreamApiError)) throw error;
      await this.jsm.consumers.update(stream, config.durable_name!, config);
    });
    const consumer = await this.js.consumers.get(stream, config.durable_name!);
    const loop: Loop = { stopped: false, done: Promise.resolve() };
    const messages = await consumer.consume({ max_messages: 1 });
    loop.messages = messages;
    (loop as { done: Promise<void> }).done = (async () => {
      for await (const message of messages) {
        // A message that arrives while stopping goes back at once instead of waiting out ack_wait.
        if (loop.stopped) {
          message.nak();
          continue;
        }
        await this.handle(message);
      }
    })().catch((error: unknown) => this.logger.error({ err: error, webhookId }, 'delivery loop ended with an error'));
    this.loops.set(webhookId, loop);
  }

  private async stopLoop(webhookId: string): Promise<void> {
    const loop = this.loops.get(webhookId);
    if (!loop) return;
    this.loops.delete(webhookId);
    loop.stopped = true;
    loop.messages?.stop();
    await loop.done;
  }
}

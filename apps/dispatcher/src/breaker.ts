// The workspace failure breaker as the dispatcher runs it: every failed attempt is added to the
// workspace's window in the KV bucket (compare-and-set, so all replicas count together and exactly one
// update crosses the threshold). The update that trips stores the trip in the state before publishing
// it; a crash in between leaves it for the next update to publish (deduplicated by trip id).
import { BreakerTripped, type Route } from '@webhooks/contracts';
import { decodeBreakerState, encodeBreakerState, recordFailure, type BreakerPolicy, type Trip } from '@webhooks/domain';
import { compareAndSet, traceHeaders, type JetStreamPublisher, type KV, type NatsConnection, type RoutingTable, type Topology } from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import { dispatcherMetrics } from './metrics.js';

/** How many of each webhook's last errors a trip carries into the notice. */
const lastErrorsPerWebhook = 5;

/**
 * Webhooks a trip has switched off, until the routing table shows a newer version of them (disabled by
 * the control plane, or activated again after that). Lets every replica stop delivering at once.
 */
export class Suspensions {
  private readonly versions = new Map<string, number>();

  suspend(webhookId: string, routeVersion: number): void {
    this.versions.set(webhookId, routeVersion);
  }

  isSuspended(route: Route): boolean {
    const version = this.versions.get(route.webhookId);
    if (version === undefined) return false;
    if (route.version > version) {
      this.versions.delete(route.webhookId);
      return false;
    }
    return true;
  }
}

export class Breaker {
  constructor(
    private readonly kv: KV,
    private readonly publisher: JetStreamPublisher,
    private readonly topology: Topology,
    private readonly routes: RoutingTable,
    private readonly policy: BreakerPolicy,
    private readonly logger: Logger,
  ) {}

  /** Counts one failed attempt; publishes the trip when this failure crosses the threshold. */
  async recordFailure(workspaceId: string, webhookId: string, at: number, reason: string): Promise<void> {
    const key = this.topology.keys.workspace(workspaceId);
    const toPublish = await compareAndSet(this.kv, key, (current, revision) => {
      const state = decodeBreakerState(current);
      const { window, trip } = recordFailure({ failures: state.failures }, { webhookId, at, reason }, this.policy);
      const tripped = trip ? this.tripMessage(workspaceId, `${workspaceId}-${revision}`, trip, at) : undefined;
      const pending = tripped ? Buffer.from(BreakerTripped.encode(tripped).finish()).toString('base64') : state.pendingTrip;
      return { value: encodeBreakerState({ failures: window.failures, ...(pending ? { pendingTrip: pending } : {}) }), result: pending };
    });
    if (toPublish) await this.publishPending(key, toPublish);
  }

  private async publishPending(key: string, encoded: string): Promise<void> {
    const trip = BreakerTripped.decode(Buffer.from(encoded, 'base64'));
    const headers = traceHeaders();
    await this.publisher.publish(this.topology.subjects.breakerTripped(trip.workspaceId), BreakerTripped.encode(trip).finish(), { msgID: trip.tripId, ...(headers ? { headers } : {}) });
    dispatcherMetrics.breakerTrips.add(1);
    this.logger.warn(
      { workspaceId: trip.workspaceId, tripId: trip.tripId, failures: trip.failureCount, webhooks: trip.webhooks.map((w) => w.webhookId) },
      'failure threshold crossed: webhooks disabled',
    );
    await compareAndSet(this.kv, key, (current) => {
      const state = decodeBreakerState(current);
      const { pendingTrip, ...rest } = state;
      return { value: encodeBreakerState(pendingTrip === encoded ? rest : state), result: undefined };
    });
  }

  private tripMessage(workspaceId: string, tripId: string, trip: Trip, at: number): BreakerTripped {
    return {
      tripId,
      workspaceId,
      windowSeconds: Math.round(this.policy.windowMs / 1000),
      threshold: this.policy.threshold,
      failureCount: trip.total,
      tripTime: new Date(at),
      webhooks: [...trip.webhooks.entries()].map(([webhookId, failures]) => {
        const route = this.routes.route(workspaceId, webhookId);
        return {
          webhookId,
          name: route?.name ?? '',
          url: route?.url ?? '',
          failureCount: failures.length,
          lastErrors: failures.slice(-lastErrorsPerWebhook).reverse().map((f) => ({ time: new Date(f.at), reason: f.reason })),
        };
      }),
    };
  }
}

/**
 * Every replica hears every trip (a plain subscription on the trip subject) and suspends the tripped
 * webhooks at once, before the control plane has disabled them in the routing table.
 */
export function followTrips(nc: NatsConnection, topology: Topology, routes: RoutingTable, suspensions: Suspensions, onSuspend: (route: Route) => void, logger: Logger): { stop(): void } {
  const subscription = nc.subscribe(topology.subjects.breakerTrippedAll, {
    callback: (error, message) => {
      if (error) return logger.error({ err: error }, 'trip subscription failed');
      try {
        const trip = BreakerTripped.decode(message.data);
        for (const webhook of trip.webhooks) {
          const route = routes.route(trip.workspaceId, webhook.webhookId);
          if (!route) continue;
          suspensions.suspend(webhook.webhookId, route.version);
          onSuspend(route);
        }
      } catch (decodeError) {
        logger.error({ err: decodeError }, 'undecodable trip ignored');
      }
    },
  });
  return { stop: () => subscription.unsubscribe() };
}

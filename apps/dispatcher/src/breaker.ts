// The workspace failure breaker as the dispatcher runs it: every failed attempt is added to the
// workspace's window in the KV bucket (compare-and-set, so all replicas count together and exactly one
// update crosses the threshold). The update that trips stores the trip in the state before publishing
// it; a crash in between leaves it for the next update to publish (deduplicated by trip id) - but only
// while the trip stream's duplicate window still recognises a repeat: an older pending trip is dropped
// and logged, never published (see pendingTripIsStale). Each tripped webhook carries the route version
// the dispatcher saw when it decided the trip, so the control plane skips webhooks changed since.
import { BreakerTripped, type Route } from '@webhooks/contracts';
import { decodeBreakerState, encodeBreakerState, pendingTripIsStale, recordFailure, type BreakerPolicy, type BreakerState, type Trip } from '@webhooks/domain';
import { compareAndSet, streamConfigs, traceHeaders, type JetStreamPublisher, type KV, type NatsConnection, type RoutingTable, type Topology } from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import { dispatcherMetrics } from './metrics.js';
import { retryInPlace } from './retry-in-place.js';

/** How many of each webhook's last errors a trip carries into the notice. */
const lastErrorsPerWebhook = 5;

/**
 * Webhooks a trip has switched off, until the routing table shows a newer version of them (disabled by
 * the control plane, or activated again after that). Lets every replica stop delivering at once.
 */
/**
 * How long a trip whose publish fails is tried again before it is left pending for the workspace's next
 * failure (the trip stream deduplicates it by its id meanwhile, for ten minutes).
 */
export const tripPublishPersistMs = 60_000;

export class Suspensions {
  /** Eviction: an entry goes once a newer route version is seen (isSuspended) or the webhook is deleted (forget). */
  private readonly versions = new Map<string, number>();

  suspend(webhookId: string, routeVersion: number): void {
    this.versions.set(webhookId, routeVersion);
  }

  /** A deleted webhook is suspended no more. */
  forget(webhookId: string): void {
    this.versions.delete(webhookId);
  }

  get size(): number {
    return this.versions.size;
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

/** The trip stream's duplicate window, as the topology configures it. */
export function tripDuplicateWindowMs(topology: Topology): number {
  const config = streamConfigs(topology).find((c) => c.name === topology.streams.breaker);
  return (config?.duplicate_window ?? 0) / 1_000_000;
}

/** When a pending trip was decided: stored beside it; states from before that field use the trip time. */
function pendingSinceOf(state: BreakerState): number {
  if (state.pendingSince !== undefined) return state.pendingSince;
  return BreakerTripped.decode(Buffer.from(state.pendingTrip ?? '', 'base64')).tripTime?.getTime() ?? 0;
}

export class Breaker {
  private readonly duplicateWindowMs: number;

  constructor(
    private readonly kv: KV,
    private readonly publisher: JetStreamPublisher,
    private readonly topology: Topology,
    private readonly routes: RoutingTable,
    private readonly policy: BreakerPolicy,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.duplicateWindowMs = tripDuplicateWindowMs(topology);
  }

  /** Counts one failed attempt; publishes the trip when this failure crosses the threshold. */
  async recordFailure(workspaceId: string, webhookId: string, at: number, reason: string): Promise<void> {
    const key = this.topology.keys.workspace(workspaceId);
    const { toPublish, stale } = await compareAndSet(this.kv, key, (current, revision) => {
      const state = decodeBreakerState(current);
      const now = this.now();
      const staleSince = state.pendingTrip !== undefined && pendingTripIsStale(pendingSinceOf(state), now, this.duplicateWindowMs) ? pendingSinceOf(state) : undefined;
      const { window, trip } = recordFailure({ failures: state.failures }, { webhookId, at, reason }, this.policy);
      const tripped = trip ? this.tripMessage(workspaceId, `${workspaceId}-${revision}`, trip, at) : undefined;
      const kept = staleSince === undefined && state.pendingTrip !== undefined ? { pendingTrip: state.pendingTrip, pendingSince: pendingSinceOf(state) } : undefined;
      const pending = tripped ? { pendingTrip: Buffer.from(BreakerTripped.encode(tripped).finish()).toString('base64'), pendingSince: now } : kept;
      const stale = staleSince === undefined ? undefined : { encoded: state.pendingTrip!, ageMs: now - staleSince };
      return { value: encodeBreakerState({ failures: window.failures, ...pending }), result: { toPublish: pending?.pendingTrip, stale } };
    });
    if (stale) {
      const trip = BreakerTripped.decode(Buffer.from(stale.encoded, 'base64'));
      dispatcherMetrics.staleTripsDropped.add(1);
      this.logger.error(
        { workspaceId, tripId: trip.tripId, ageMs: stale.ageMs, duplicateWindowMs: this.duplicateWindowMs, webhooks: trip.webhooks.map((w) => w.webhookId) },
        'stale pending trip dropped: it was never confirmed published and is older than the trip duplicate window; its webhooks stay as they are',
      );
    }
    if (!toPublish) return;
    // The trip is tried again in place for a while: left pending, it would be published only by the
    // workspace's next failure, and a webhook whose events have all been dropped may never fail again
    // (seen in the cluster suite: a trip publish timed out during a NATS election, and nothing tripped).
    const deadline = this.now() + tripPublishPersistMs;
    await retryInPlace(() => this.publishPending(key, toPublish), {
      keepAlive: () => {},
      initialDelayMs: 200,
      maxDelayMs: 2_000,
      givenUp: () => this.now() >= deadline,
      onFirstFailure: (error) => this.logger.warn({ err: error, workspaceId }, 'trip not published yet; trying again'),
    });
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
      const { pendingTrip, pendingSince: _since, ...rest } = state;
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
          // The version this decision saw: the control plane leaves a webhook changed since alone.
          routeVersion: route?.version ?? 0,
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

// The control plane's side of the breaker: a durable consumer of trips that disables the tripped
// webhooks in PostgreSQL (and so in the routing table), and the reset of a webhook's failures when it is
// activated again.
import { BreakerTripped } from '@webhooks/contracts';
import { decodeBreakerState, encodeBreakerState, forgetWebhook } from '@webhooks/domain';
import { AckPolicy, compareAndSet, DeliverPolicy, ensureConsumer, type JetStreamClient, type JetStreamManager, type KV, type Topology } from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import type { ControlPlane } from './control-plane.js';

export async function consumeTrips(js: JetStreamClient, jsm: JetStreamManager, topology: Topology, controlPlane: ControlPlane, logger: Logger): Promise<{ stop(): Promise<void> }> {
  const stream = topology.streams.breaker;
  const durable = topology.consumers.tripsToControlPlane;
  const config = { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: topology.subjects.breakerTrippedAll, ack_wait: 30_000_000_000 };
  await ensureConsumer(jsm, stream, { ...config, durable_name: durable });
  const messages = await (await js.consumers.get(stream, durable)).consume({ max_messages: 8 });
  const done = (async () => {
    for await (const message of messages) {
      try {
        const trip = BreakerTripped.decode(message.data);
        const disabled = await controlPlane.applyTrip({
          tripId: trip.tripId,
          workspaceId: trip.workspaceId,
          windowSeconds: trip.windowSeconds,
          failureCount: trip.failureCount,
          tripTime: trip.tripTime ?? new Date(),
          webhooks: trip.webhooks.map((w) => ({
            webhookId: w.webhookId,
            lastError: w.lastErrors[0] ? `${w.lastErrors[0].reason} (${w.lastErrors[0].time?.toISOString()})` : '',
            routeVersion: w.routeVersion,
          })),
        });
        const disabledIds = disabled.map((w) => w.id);
        // Left alone: already disabled, deleted, or changed since the trip was decided.
        const leftAlone = trip.webhooks.map((w) => w.webhookId).filter((id) => !disabledIds.includes(id));
        logger.warn({ tripId: trip.tripId, workspaceId: trip.workspaceId, webhooks: disabledIds, leftAlone }, 'webhooks disabled by the failure threshold');
        message.ack();
      } catch (error) {
        logger.error({ err: error }, 'applying a breaker trip failed; it will be retried');
        message.nak(2_000);
      }
    }
  })();
  return {
    async stop() {
      messages.stop();
      await done;
    },
  };
}

export function failureForgetter(kv: KV, topology: Topology) {
  return (workspaceId: string, webhookId: string): Promise<void> =>
    compareAndSet(kv, topology.keys.workspace(workspaceId), (current) => {
      const state = decodeBreakerState(current);
      return { value: encodeBreakerState({ ...state, failures: forgetWebhook(state, webhookId).failures }), result: undefined };
    });
}

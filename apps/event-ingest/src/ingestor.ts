// Turns accepted events into delivery tasks: one per subscribed, active webhook, on that webhook's own
// subject, deduplicated by JetStream on "<event id>.<webhook id>". It answers only once JetStream has
// stored every task and the event is recorded as accepted, so an event the caller saw accepted is durable
// and a retry of it within the idempotency window is answered "duplicate", even after a NATS restart.
import type { Event, PublishResult } from '@webhooks/contracts';
import { DeliveryTask, encodeMessage } from '@webhooks/contracts';
import { acceptEvent, DomainError, notFound, type AcceptedEvent } from '@webhooks/domain';
import type { Caller } from '@webhooks/grpc-kit';
import { RoutingTableBehindError, traceHeaders, type JetStreamPublisher, type RoutingTable, type Topology } from '@webhooks/messaging';
import { metrics, type Logger } from '@webhooks/telemetry';
import type { AcceptedEvents, EarlierAcceptance } from './accepted-events.js';

const meter = metrics.getMeter('event-ingest');
const ingestMetrics = {
  accepted: meter.createCounter('webhook.events.accepted', { description: 'Events accepted (queued for every subscribed webhook)' }),
  rejected: meter.createCounter('webhook.events.rejected', { description: 'Events refused, by reason (invalid-argument, not-found, permission-denied, unavailable, ...)' }),
};

export interface IngestLimits {
  readonly maxEventBytes: number;
  readonly maxBatchEvents: number;
}

export class Ingestor {
  constructor(
    private readonly publisher: JetStreamPublisher,
    private readonly routes: RoutingTable,
    private readonly acceptedEvents: AcceptedEvents,
    private readonly topology: Topology,
    private readonly limits: IngestLimits,
    private readonly logger: Logger,
  ) {}

  /** Validates every event first; only when all are valid is anything queued. */
  async publish(events: readonly (Event | undefined)[], caller: Caller, batch: boolean): Promise<PublishResult[]> {
    try {
      const results = await this.accept(events, caller, batch);
      ingestMetrics.accepted.add(results.length);
      return results;
    } catch (error) {
      ingestMetrics.rejected.add(events.length || 1, { reason: error instanceof DomainError ? error.kind : 'internal' });
      throw error;
    }
  }

  private async accept(events: readonly (Event | undefined)[], caller: Caller, batch: boolean): Promise<PublishResult[]> {
    if (batch && events.length === 0) throw new DomainError('invalid-argument', 'events: send at least one event');
    if (events.length > this.limits.maxBatchEvents) {
      throw new DomainError('invalid-argument', `events: at most ${this.limits.maxBatchEvents} events per call, got ${events.length}`);
    }
    const now = new Date();
    const accepted = events.map((event, i) => acceptEvent(event, now, this.limits.maxEventBytes, batch ? `events[${i}]` : 'event'));
    for (const event of accepted) caller.authorize(event.workspaceId);

    // The earlier acceptances are looked up while the routing table syncs: two round trips at once.
    const earlier = accepted.map((event) => this.earlierAcceptance(event));
    // See every routing change that completed before this call: a webhook created a moment ago gets the event.
    try {
      await this.routes.sync();
    } catch (error) {
      this.logger.error({ err: error }, 'routing table sync failed');
      await Promise.all(earlier);
      if (error instanceof RoutingTableBehindError) {
        throw new DomainError('unavailable', `${error.message}; retry the call (it is idempotent by event id)`);
      }
      throw new DomainError('unavailable', 'the routing table could not be read; retry the call (it is idempotent by event id)');
    }
    for (const event of accepted) {
      if (!this.routes.workspace(event.workspaceId)) {
        await Promise.all(earlier);
        throw notFound(`workspace "${event.workspaceId}" (create it with UpsertWorkspace first)`);
      }
    }
    return Promise.all(accepted.map((event, i) => this.queue(event, now, earlier[i]!)));
  }

  /** Never rejects: a failed lookup comes back as the error the caller is answered with. */
  private earlierAcceptance(event: AcceptedEvent): Promise<EarlierAcceptance | undefined | DomainError> {
    return this.acceptedEvents.find(event.workspaceId, event.id).catch((error: unknown) => {
      this.logger.error({ err: error, eventId: event.id, workspaceId: event.workspaceId }, 'reading the accepted events failed');
      return new DomainError('unavailable', 'the record of accepted event ids could not be read; retry the call with the same event id (it is idempotent)');
    });
  }

  /**
   * One event, in this order: (1) an earlier acceptance answers "duplicate" and queues nothing; (2) the
   * tasks are stored; (3) the event is recorded as accepted; only then the answer. A crash between (2)
   * and (3) makes a retry queue again, which the streams' duplicate tables catch unless NATS restarted
   * in between too: at least once, never a lost event.
   */
  private async queue(event: AcceptedEvent, acceptedAt: Date, lookup: Promise<EarlierAcceptance | undefined | DomainError>): Promise<PublishResult> {
    const earlier = await lookup;
    if (earlier instanceof DomainError) throw earlier;
    if (earlier) return { eventId: event.id, webhookIds: earlier.webhookIds, duplicate: true };

    const targets = [...this.routes.webhooksOf(event.workspaceId)].filter((route) => route.active && route.eventTypes.includes(event.type));
    const trace = traceHeaders();
    let acks;
    try {
      // Issued together, so one connection carries them to the server in this order.
      acks = await Promise.all(
        targets.map((route) =>
          this.publisher.publish(
            this.topology.subjects.deliver(event.workspaceId, route.webhookId),
            encodeMessage(DeliveryTask, {
              eventId: event.id,
              workspaceId: event.workspaceId,
              webhookId: route.webhookId,
              eventType: event.type,
              occurredAt: event.occurredAt,
              acceptedAt,
              body: event.body,
              deliveryId: '',
              retryOfDeliveryId: '',
            }),
            { msgID: `${event.id}.${route.webhookId}`, expectStream: this.topology.streams.deliver(route.webhookId), ...(trace ? { headers: trace } : {}) },
          ),
        ),
      );
    } catch (error) {
      this.logger.error({ err: error, eventId: event.id, workspaceId: event.workspaceId }, 'queueing an event failed');
      throw new DomainError('unavailable', 'the delivery queue did not confirm the event; retry the call with the same event id (it is idempotent)');
    }
    const webhookIds = targets.map((route) => route.webhookId);
    let recordedEarlier: EarlierAcceptance | undefined;
    try {
      recordedEarlier = await this.acceptedEvents.record(event.workspaceId, event.id, webhookIds);
    } catch (error) {
      this.logger.error({ err: error, eventId: event.id, workspaceId: event.workspaceId }, 'recording an accepted event failed');
      throw new DomainError('unavailable', 'the event was queued but not recorded as accepted; retry the call with the same event id (it is idempotent)');
    }
    // Another replica accepted the same id meanwhile: one answer for both, naming every webhook queued.
    if (recordedEarlier) return { eventId: event.id, webhookIds: recordedEarlier.webhookIds, duplicate: true };
    return {
      eventId: event.id,
      webhookIds,
      // The streams still recognise a retry that came before this event was recorded (e.g. the same id twice in one batch).
      duplicate: acks.length > 0 && acks.every((ack) => ack.duplicate),
    };
  }
}

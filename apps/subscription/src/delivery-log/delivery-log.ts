// Reading the delivery log, and the ways to send something again: RetryDelivery (a dropped delivery, as a
// new delivery pointing to the original), RecoverDeliveries (every dropped delivery of a webhook since a
// time, in order) and SendTestEvent (a sample of an event type); and a webhook's attempts per hour.
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { DeliveryTask } from '@webhooks/contracts';
import { acceptEvent, checkResourceId, checkWorkspaceId, exampleEvent, failedPrecondition, invalidArgument, isEventType, newId, notFound } from '@webhooks/domain';
import type { JetStreamPublisher, Topology } from '@webhooks/messaging';
import { AttemptEntity, DeliveryEntity, WebhookEntity, type Attempt, type Delivery, type DeliveryStatusName } from '../persistence/entities.js';

/** A delivery as the log shows it: without its body. */
export type DeliveryView = Omit<Delivery, 'body'>;

// MikroORM types a partial load as its own Loaded<> type; a delivery loaded without `body` is a view.
const asView = (loaded: unknown) => loaded as DeliveryView;
const excludeBody = { exclude: ['body'] } as const;

const maxPageSize = 100;
/** Deliveries one RecoverDeliveries call sends again at most; a larger backlog takes more calls. */
export const maxRecoveredPerCall = 10_000;
/** Deliveries read from PostgreSQL at once while recovering. */
const recoverBatch = 200;
const defaultPageSize = 50;

export interface HourlyAttempts {
  readonly hourStart: Date;
  readonly succeeded: number;
  readonly failed: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
}

export interface DeliveryFilter {
  readonly webhookId?: string;
  readonly eventType?: string;
  readonly status?: DeliveryStatusName;
  readonly from?: Date;
  readonly to?: Date;
}

function encodeCursor(delivery: DeliveryView): string {
  return Buffer.from(`${delivery.createdAt.toISOString()}|${delivery.id}`).toString('base64url');
}

function decodeCursor(token: string): { createdAt: Date; id: string } {
  const [time, id] = Buffer.from(token, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(time ?? '');
  if (!id || Number.isNaN(createdAt.getTime())) throw invalidArgument('page_token', 'is not a token from a previous response');
  return { createdAt, id };
}

export class DeliveryLog {
  constructor(
    private readonly orm: MikroORM,
    private readonly publisher: JetStreamPublisher,
    private readonly topology: Topology,
    private readonly maxEventBytes: number,
  ) {}

  private em(): EntityManager {
    return this.orm.em.fork();
  }

  /** Newest first, within one workspace, by (created_at, id) so pages never skip or repeat a delivery. */
  async list(workspaceId: string, filter: DeliveryFilter, pageSize: number, pageToken: string): Promise<{ deliveries: DeliveryView[]; nextPageToken: string }> {
    checkWorkspaceId(workspaceId);
    if (pageSize < 0 || pageSize > maxPageSize) throw invalidArgument('page_size', `must be between 0 and ${maxPageSize}`);
    if (filter.webhookId) checkResourceId(filter.webhookId, 'webhook_id');
    if (filter.eventType && !isEventType(filter.eventType)) throw invalidArgument('event_type', `unknown event type "${filter.eventType.slice(0, 80)}"`);
    if (filter.from && filter.to && filter.from >= filter.to) throw invalidArgument('start_time', 'must be before end_time');
    const limit = pageSize || defaultPageSize;
    const after = pageToken ? decodeCursor(pageToken) : undefined;
    const created: Record<string, Date> = {};
    if (filter.from) created.$gte = filter.from;
    if (filter.to) created.$lt = filter.to;
    const deliveries = await this.em().find(
      DeliveryEntity,
      {
        workspaceId,
        ...(filter.webhookId ? { webhookId: filter.webhookId } : {}),
        ...(filter.eventType ? { eventType: filter.eventType } : {}),
        ...(filter.status ? { status: filter.status } : {}),
        ...(Object.keys(created).length > 0 ? { createdAt: created } : {}),
        ...(after ? { $or: [{ createdAt: { $lt: after.createdAt } }, { createdAt: after.createdAt, id: { $lt: after.id } }] } : {}),
      },
      { orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], limit: limit + 1, ...excludeBody },
    );
    const page = deliveries.slice(0, limit).map(asView);
    return { deliveries: page, nextPageToken: deliveries.length > limit ? encodeCursor(page[page.length - 1]!) : '' };
  }

  async get(workspaceId: string, deliveryId: string): Promise<{ delivery: DeliveryView; attempts: Attempt[]; body: Buffer }> {
    checkWorkspaceId(workspaceId);
    checkResourceId(deliveryId, 'delivery_id');
    const em = this.em();
    const delivery = await em.findOne(DeliveryEntity, { id: deliveryId, workspaceId });
    if (!delivery) throw notFound(`delivery "${deliveryId}" in workspace "${workspaceId}"`);
    const attempts = await em.find(AttemptEntity, { deliveryId }, { orderBy: { number: 'asc' } });
    return { delivery: asView(delivery), attempts, body: delivery.body ? Buffer.from(delivery.body) : Buffer.alloc(0) };
  }

  /** Sends a dropped delivery again, behind the webhook's queued events, as a new delivery. */
  async retry(workspaceId: string, deliveryId: string): Promise<DeliveryView> {
    checkWorkspaceId(workspaceId);
    checkResourceId(deliveryId, 'delivery_id');
    const em = this.em();
    const original = await em.findOne(DeliveryEntity, { id: deliveryId, workspaceId });
    if (!original) throw notFound(`delivery "${deliveryId}" in workspace "${workspaceId}"`);
    if (original.status !== 'dropped') throw failedPrecondition(`delivery "${deliveryId}" is ${original.status}; only dropped deliveries can be retried`);
    if (!original.body) throw failedPrecondition(`delivery "${deliveryId}" has no stored body to send again`);
    await this.requireActiveWebhook(em, workspaceId, original.webhookId);
    return this.enqueue(em, { workspaceId, webhookId: original.webhookId, eventId: original.eventId, eventType: original.eventType, body: Buffer.from(original.body), retryOf: deliveryId });
  }

  /**
   * Sends again, oldest first, every dropped delivery of the webhook created at or after `since` that was
   * not sent again already (no delivery points to it). Each is queued on the webhook's subject before the
   * next, so they arrive in their original order, behind whatever the webhook had queued.
   */
  async recover(workspaceId: string, webhookId: string, since: Date | undefined): Promise<{ queued: number; deliveries: DeliveryView[] }> {
    checkWorkspaceId(workspaceId);
    checkResourceId(webhookId, 'webhook_id');
    if (!since || Number.isNaN(since.getTime())) throw invalidArgument('since', 'is required: the time from which dropped deliveries are sent again');
    if (since.getTime() > Date.now()) throw invalidArgument('since', 'is in the future; choose a time in the past');
    const em = this.em();
    await this.requireActiveWebhook(em, workspaceId, webhookId);
    const queued: DeliveryView[] = [];
    let after: { createdAt: Date; id: string } | undefined;
    while (queued.length < maxRecoveredPerCall) {
      const rows = (await em.getConnection().execute(
        `SELECT d.id, d.event_id, d.event_type, d.body, d.created_at FROM deliveries d
          WHERE d.workspace_id = ? AND d.webhook_id = ? AND d.status = 'dropped' AND d.created_at >= ? AND d.body IS NOT NULL
            ${after ? 'AND (d.created_at, d.id) > (?, ?)' : ''}
            AND NOT EXISTS (SELECT 1 FROM deliveries r WHERE r.retry_of_delivery_id = d.id)
          ORDER BY d.created_at, d.id LIMIT ?`,
        [workspaceId, webhookId, since, ...(after ? [after.createdAt, after.id] : []), Math.min(recoverBatch, maxRecoveredPerCall - queued.length)],
      )) as { id: string; event_id: string; event_type: string; body: Buffer; created_at: Date }[];
      if (rows.length === 0) break;
      for (const row of rows) {
        queued.push(await this.enqueue(em, { workspaceId, webhookId, eventId: row.event_id, eventType: row.event_type, body: Buffer.from(row.body), retryOf: row.id }));
      }
      const last = rows[rows.length - 1]!;
      after = { createdAt: last.created_at, id: last.id };
    }
    return { queued: queued.length, deliveries: queued };
  }

  /** The webhook's attempts per hour over the last 24 hours, aggregated in PostgreSQL, oldest hour first. */
  async hourlyStats(workspaceId: string, webhookId: string, now = new Date()): Promise<HourlyAttempts[]> {
    checkWorkspaceId(workspaceId);
    checkResourceId(webhookId, 'webhook_id');
    const em = this.em();
    const webhook = await em.findOne(WebhookEntity, { id: webhookId, workspace: workspaceId });
    if (!webhook) throw notFound(`webhook "${webhookId}" in workspace "${workspaceId}"`);
    const currentHour = new Date(Math.floor(now.getTime() / 3_600_000) * 3_600_000);
    const from = new Date(currentHour.getTime() - 23 * 3_600_000);
    // Attempt 0 is a delivery dropped before any attempt: no request was made, so it is not counted.
    const rows = (await em.getConnection().execute(
      `SELECT floor(extract(epoch FROM a.start_time) / 3600)::bigint * 3600 AS hour,
              count(*) FILTER (WHERE a.decision = 'succeeded')::int AS succeeded,
              count(*) FILTER (WHERE a.decision <> 'succeeded')::int AS failed,
              coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms), 0)::int AS p50,
              coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms), 0)::int AS p95
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
        WHERE d.workspace_id = ? AND d.webhook_id = ? AND a.number > 0 AND a.start_time >= ?
        GROUP BY 1`,
      [workspaceId, webhookId, from],
    )) as { hour: string | number; succeeded: number; failed: number; p50: number; p95: number }[];
    const byHour = new Map(rows.map((row) => [Number(row.hour) * 1000, row]));
    return Array.from({ length: 24 }, (_, i) => {
      const hourStart = new Date(from.getTime() + i * 3_600_000);
      const row = byHour.get(hourStart.getTime());
      return { hourStart, succeeded: row?.succeeded ?? 0, failed: row?.failed ?? 0, p50Ms: row?.p50 ?? 0, p95Ms: row?.p95 ?? 0 };
    });
  }

  async sendTest(workspaceId: string, webhookId: string, eventType: string): Promise<DeliveryView> {
    checkWorkspaceId(workspaceId);
    checkResourceId(webhookId, 'webhook_id');
    if (!isEventType(eventType)) throw invalidArgument('event_type', `unknown event type "${eventType.slice(0, 80)}"`);
    const em = this.em();
    await this.requireActiveWebhook(em, workspaceId, webhookId);
    const event = { ...exampleEvent(eventType, workspaceId), id: newId('evt_test'), occurredAt: new Date() };
    const accepted = acceptEvent(event, new Date(), this.maxEventBytes);
    return this.enqueue(em, { workspaceId, webhookId, eventId: accepted.id, eventType, body: accepted.body, retryOf: '' });
  }

  private async requireActiveWebhook(em: EntityManager, workspaceId: string, webhookId: string): Promise<void> {
    const webhook = await em.findOne(WebhookEntity, { id: webhookId, workspace: workspaceId });
    if (!webhook) throw notFound(`webhook "${webhookId}" in workspace "${workspaceId}"`);
    if (webhook.status !== 'active') throw failedPrecondition(`webhook "${webhookId}" is disabled; activate it first`);
  }

  /**
   * Queues the task first (durable in JetStream), then records the pending delivery; if the record is
   * lost, the dispatcher's attempt records create the row all the same.
   */
  private async enqueue(em: EntityManager, task: { workspaceId: string; webhookId: string; eventId: string; eventType: string; body: Buffer; retryOf: string }): Promise<DeliveryView> {
    const deliveryId = newId('dl');
    const now = new Date();
    await this.publisher.publish(
      this.topology.subjects.deliver(task.workspaceId, task.webhookId),
      DeliveryTask.encode({ eventId: task.eventId, workspaceId: task.workspaceId, webhookId: task.webhookId, eventType: task.eventType, occurredAt: now, acceptedAt: now, body: task.body, deliveryId, retryOfDeliveryId: task.retryOf }).finish(),
      { msgID: deliveryId, expectStream: this.topology.streams.deliver(task.webhookId) },
    );
    await em.getConnection().execute(
      `INSERT INTO deliveries (id, workspace_id, webhook_id, event_id, event_type, status, attempt_count, retry_of_delivery_id, body, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
      [deliveryId, task.workspaceId, task.webhookId, task.eventId, task.eventType, task.retryOf || null, task.body, now, now],
    );
    return asView(await em.findOneOrFail(DeliveryEntity, { id: deliveryId }, excludeBody));
  }
}

// Reading the delivery log, and the ways to send something again: RetryDelivery (a dropped delivery, as a
// new delivery pointing to the original), RecoverDeliveries (every dropped delivery of a webhook since a
// time, in order) and SendTestEvent (a sample of an event type); and a webhook's attempts per hour.
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { DeliveryTask } from '@webhooks/contracts';
import { acceptEvent, checkResourceId, checkWorkspaceId, exampleEvent, failedPrecondition, invalidArgument, isEventType, newId, notFound } from '@webhooks/domain';
import type { JetStreamPublisher, Topology } from '@webhooks/messaging';
import { AttemptEntity, DeliveryEntity, WebhookEntity, type Attempt, type Delivery, type DeliveryStatusName, type Webhook } from '../persistence/entities.js';
import { recordActivity, unattributed, type Actor } from '../activity/activity-log.js';
import { dateOf, epochMs } from '../persistence/raw-sql.js';
import { dayOf, queryThrough, withDays } from './partitions.js';

/** A delivery as the log shows it (its body is stored once per event, in event_bodies). */
export type DeliveryView = Delivery;

const maxPageSize = 100;
/** Deliveries one RecoverDeliveries call sends again at most; a larger backlog takes more calls. */
export const maxRecoveredPerCall = 10_000;
/** Deliveries read from PostgreSQL at once while recovering. */
const recoverBatch = 200;
const defaultPageSize = 50;
/** ListDeliveries looks for a page in this much of the newest log first (one or two day partitions). */
const recentWindowMs = 86_400_000;

export interface HourlyAttempts {
  readonly hourStart: Date;
  readonly succeeded: number;
  readonly failed: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
}

/** When a retrying delivery's next attempt is due, and the latest an attempt may start before it is dropped. */
export interface RetryTimes {
  readonly nextAttemptAt: Date | undefined;
  readonly giveUpAt: Date | undefined;
}

/** A webhook's health as its recent attempts tell it (ListWebhookHealth). */
export interface WebhookHealth {
  readonly webhookId: string;
  readonly lastFailure: { readonly startTime: Date; readonly statusCode: number; readonly failureReason: string } | undefined;
  readonly attempts24h: number;
  readonly succeeded24h: number;
  readonly retrying: number;
  readonly nextAttemptAt: Date | undefined;
}

/**
 * How far back the health and the hourly figures look for deliveries whose attempts may fall in their last
 * 24 hours, and so which day partitions they read: an attempt can start long after its delivery was
 * created (a backlog, a rate limit), and reading by the workspace's deliveries keeps the query to one
 * workspace's rows.
 */
const healthDeliveriesBackMs = 48 * 3_600_000;
const healthAttemptsBackMs = 24 * 3_600_000;

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
    /** The dispatchers' GIVE_UP_AFTER: no attempt starts later than this after the first one. */
    private readonly giveUpAfterMs = 180_000,
  ) {}

  /** For each retrying delivery: its next attempt's due time and its give-up time (first attempt + GIVE_UP_AFTER). */
  async retryTimes(deliveries: readonly DeliveryView[]): Promise<Map<string, RetryTimes>> {
    const retrying = deliveries.filter((d) => d.status === 'retrying');
    const times = new Map<string, RetryTimes>();
    if (retrying.length === 0) return times;
    const created = retrying.map((d) => d.createdAt.getTime());
    // The deliveries' span of created_at names the partitions to look in.
    const rows = (await this.em().getConnection().execute(
      `SELECT delivery_id, ${epochMs('min(start_time)')} AS first_start, ${epochMs('(array_agg(retry_at ORDER BY number DESC))[1]')} AS next_attempt
         FROM attempts WHERE delivery_id IN (?) AND created_at BETWEEN ? AND ? AND number > 0 GROUP BY delivery_id`,
      [retrying.map((d) => d.id), new Date(Math.min(...created)), new Date(Math.max(...created))],
    )) as { delivery_id: string; first_start: number | null; next_attempt: number | null }[];
    for (const row of rows) times.set(row.delivery_id, this.retryTimesOf(dateOf(row.first_start), dateOf(row.next_attempt)));
    return times;
  }

  private retryTimesOf(firstStart: Date | null, nextAttempt: Date | null): RetryTimes {
    return { nextAttemptAt: nextAttempt ?? undefined, giveUpAt: firstStart ? new Date(firstStart.getTime() + this.giveUpAfterMs) : undefined };
  }

  /**
   * Each webhook of the workspace with deliveries in the log: its last failed attempt and its success
   * rate over the last 24 hours, and its deliveries waiting for a retry with the first one due. Read from
   * the workspace's deliveries of the last 48 hours (healthDeliveriesBackMs), so the cost is one
   * workspace's rows, not the whole log's.
   */
  async health(workspaceId: string, now = new Date()): Promise<WebhookHealth[]> {
    checkWorkspaceId(workspaceId);
    const rows = (await this.em().getConnection().execute(
      `WITH recent AS (
         SELECT d.webhook_id, a.start_time, a.status_code, a.failure_reason, a.decision
           FROM deliveries d JOIN attempts a ON a.delivery_id = d.id AND a.created_at = d.created_at
          WHERE d.workspace_id = ? AND d.created_at >= ? AND a.number > 0 AND a.start_time >= ?
       ),
       rates AS (
         SELECT webhook_id, count(*)::int AS attempts, count(*) FILTER (WHERE decision = 'succeeded')::int AS succeeded FROM recent GROUP BY webhook_id
       ),
       failures AS (
         SELECT DISTINCT ON (webhook_id) webhook_id, start_time, status_code, failure_reason FROM recent
          WHERE decision <> 'succeeded' ORDER BY webhook_id, start_time DESC
       ),
       retrying AS (
         SELECT d.webhook_id, count(*)::int AS retrying, min(a.retry_at) AS next_attempt
           FROM deliveries d JOIN attempts a ON a.delivery_id = d.id AND a.created_at = d.created_at AND a.number = d.attempt_count
          WHERE d.workspace_id = ? AND d.status = 'retrying'
          GROUP BY d.webhook_id
       )
       SELECT w.webhook_id, coalesce(r.attempts, 0) AS attempts, coalesce(r.succeeded, 0) AS succeeded,
              ${epochMs('f.start_time')} AS failed_at, f.status_code, f.failure_reason,
              coalesce(t.retrying, 0) AS retrying, ${epochMs('t.next_attempt')} AS next_attempt
         FROM (SELECT webhook_id FROM rates UNION SELECT webhook_id FROM retrying) w
         LEFT JOIN rates r USING (webhook_id) LEFT JOIN failures f USING (webhook_id) LEFT JOIN retrying t USING (webhook_id)
        ORDER BY w.webhook_id`,
      [workspaceId, new Date(now.getTime() - healthDeliveriesBackMs), new Date(now.getTime() - healthAttemptsBackMs), workspaceId],
    )) as { webhook_id: string; attempts: number; succeeded: number; failed_at: number | null; status_code: number | null; failure_reason: string | null; retrying: number; next_attempt: number | null }[];
    return rows.map((row) => ({
      webhookId: row.webhook_id,
      lastFailure: row.failed_at === null ? undefined : { startTime: new Date(Number(row.failed_at)), statusCode: row.status_code ?? 0, failureReason: row.failure_reason ?? '' },
      attempts24h: row.attempts,
      succeeded24h: row.succeeded,
      retrying: row.retrying,
      nextAttemptAt: dateOf(row.next_attempt) ?? undefined,
    }));
  }

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
    const read = (from: Date | undefined) => {
      const created: Record<string, Date> = {};
      if (from) created.$gte = from;
      if (filter.to) created.$lt = filter.to;
      return this.em().find(
        DeliveryEntity,
        {
          workspaceId,
          ...(filter.webhookId ? { webhookId: filter.webhookId } : {}),
          ...(filter.eventType ? { eventType: filter.eventType } : {}),
          ...(filter.status ? { status: filter.status } : {}),
          ...(Object.keys(created).length > 0 ? { createdAt: created } : {}),
          ...(after ? { $or: [{ createdAt: { $lt: after.createdAt } }, { createdAt: after.createdAt, id: { $lt: after.id } }] } : {}),
        },
        { orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], limit: limit + 1 },
      );
    };
    // The log is partitioned by day (partitions.ts), and a query over every day costs PostgreSQL a plan over
    // every partition. The page is looked for first in the day before its newest possible time (the cursor,
    // the end of the range, or now), one or two partitions: every delivery outside that day is older than
    // every delivery in it, so a full page there is the page. Only a page it does not fill is read again
    // over the whole range.
    const newest = after?.createdAt ?? filter.to ?? new Date();
    const recent = new Date(newest.getTime() - recentWindowMs);
    const narrower = !filter.from || recent > filter.from;
    let deliveries = await read(narrower ? recent : filter.from);
    if (narrower && deliveries.length <= limit) deliveries = await read(filter.from);
    const page = deliveries.slice(0, limit);
    return { deliveries: page, nextPageToken: deliveries.length > limit ? encodeCursor(page[page.length - 1]!) : '' };
  }

  async get(workspaceId: string, deliveryId: string): Promise<{ delivery: DeliveryView; attempts: Attempt[]; body: Buffer; retry: RetryTimes | undefined }> {
    checkWorkspaceId(workspaceId);
    checkResourceId(deliveryId, 'delivery_id');
    const em = this.em();
    const delivery = await em.findOne(DeliveryEntity, { id: deliveryId, workspaceId });
    if (!delivery) throw notFound(`delivery "${deliveryId}" in workspace "${workspaceId}"`);
    const attempts = await em.find(AttemptEntity, { deliveryId, createdAt: delivery.createdAt }, { orderBy: { number: 'asc' } });
    const made = attempts.filter((a) => a.number > 0);
    const retry = delivery.status === 'retrying' && made.length > 0 ? this.retryTimesOf(made[0]!.startTime, made[made.length - 1]!.retryAt ?? null) : undefined;
    return { delivery, attempts, body: (await this.bodyOf(em, delivery)) ?? Buffer.alloc(0), retry };
  }

  /** The delivery's event body, stored once for every delivery of the event (partitions.ts rule 2). */
  private async bodyOf(em: EntityManager, delivery: DeliveryView): Promise<Buffer | undefined> {
    const [row] = (await em.getConnection().execute(
      'SELECT body FROM event_bodies WHERE workspace_id = ? AND event_id = ? AND created_at = ?',
      [delivery.workspaceId, delivery.eventId, delivery.createdAt],
    )) as { body: Buffer }[];
    return row ? Buffer.from(row.body) : undefined;
  }

  /** Sends a dropped delivery again, behind the webhook's queued events, as a new delivery. */
  async retry(workspaceId: string, deliveryId: string): Promise<DeliveryView> {
    checkWorkspaceId(workspaceId);
    checkResourceId(deliveryId, 'delivery_id');
    const em = this.em();
    const original = await em.findOne(DeliveryEntity, { id: deliveryId, workspaceId });
    if (!original) throw notFound(`delivery "${deliveryId}" in workspace "${workspaceId}"`);
    if (original.status !== 'dropped') throw failedPrecondition(`delivery "${deliveryId}" is ${original.status}; only dropped deliveries can be retried`);
    const body = await this.bodyOf(em, original);
    if (!body) throw failedPrecondition(`delivery "${deliveryId}" has no stored body to send again`);
    await this.requireActiveWebhook(em, workspaceId, original.webhookId);
    return this.enqueue(em, { workspaceId, webhookId: original.webhookId, eventId: original.eventId, eventType: original.eventType, body, retryOf: deliveryId });
  }

  /**
   * Sends again, oldest first, every dropped delivery of the webhook created at or after `since` that was
   * not sent again already (no delivery points to it). Each is queued on the webhook's subject before the
   * next, so they arrive in their original order, behind whatever the webhook had queued.
   */
  async recover(workspaceId: string, webhookId: string, since: Date | undefined, actor: Actor = unattributed): Promise<{ queued: number; deliveries: DeliveryView[] }> {
    checkWorkspaceId(workspaceId);
    checkResourceId(webhookId, 'webhook_id');
    if (!since || Number.isNaN(since.getTime())) throw invalidArgument('since', 'is required: the time from which dropped deliveries are sent again');
    if (since.getTime() > Date.now()) throw invalidArgument('since', 'is in the future; choose a time in the past');
    const em = this.em();
    const webhook = await this.requireActiveWebhook(em, workspaceId, webhookId);
    const queued: DeliveryView[] = [];
    let after: { createdAt: Date; id: string } | undefined;
    while (queued.length < maxRecoveredPerCall) {
      const rows = (await em.getConnection().execute(
        `SELECT d.id, d.event_id, d.event_type, b.body, d.created_at FROM deliveries d
           JOIN event_bodies b ON b.workspace_id = d.workspace_id AND b.event_id = d.event_id AND b.created_at = d.created_at
          WHERE d.workspace_id = ? AND d.webhook_id = ? AND d.status = 'dropped' AND d.created_at >= ?
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
    // Recorded once the deliveries are queued; a recovery that found nothing to send changes nothing.
    if (queued.length > 0) {
      await this.em().transactional((tx) =>
        recordActivity(tx, [{ workspaceId, webhookId, webhookName: webhook.name, kind: 'deliveries_recovered', actor, details: { recoveredCount: queued.length, recoveredSince: since.toISOString() } }]),
      );
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
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id AND d.created_at = a.created_at
        WHERE d.workspace_id = ? AND d.webhook_id = ? AND a.number > 0 AND a.start_time >= ? AND a.created_at >= ?
        GROUP BY 1`,
      // Deliveries of the last 48 hours, as the health reads them: their day partitions only.
      [workspaceId, webhookId, from, new Date(now.getTime() - healthDeliveriesBackMs)],
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

  private async requireActiveWebhook(em: EntityManager, workspaceId: string, webhookId: string): Promise<Webhook> {
    const webhook = await em.findOne(WebhookEntity, { id: webhookId, workspace: workspaceId });
    if (!webhook) throw notFound(`webhook "${webhookId}" in workspace "${workspaceId}"`);
    if (webhook.status !== 'active') throw failedPrecondition(`webhook "${webhookId}" is disabled; activate it first`);
    return webhook;
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
    await withDays(this.orm, queryThrough(this.orm), [dayOf(now)], () =>
      em.getConnection().execute(
        `WITH body AS (INSERT INTO event_bodies (workspace_id, event_id, created_at, body) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING)
         INSERT INTO deliveries (id, workspace_id, webhook_id, event_id, event_type, status, attempt_count, retry_of_delivery_id, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT (id, created_at) DO NOTHING`,
        [task.workspaceId, task.eventId, now, task.body, deliveryId, task.workspaceId, task.webhookId, task.eventId, task.eventType, task.retryOf || null, now, now],
      ),
    );
    return em.findOneOrFail(DeliveryEntity, { id: deliveryId, createdAt: now });
  }
}

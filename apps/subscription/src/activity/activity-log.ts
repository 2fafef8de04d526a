// Webhook activity: one record per change of a webhook, written by the transaction that makes the
// change, read back as a history (ListWebhookActivity) or followed as it grows (WatchActivity, feed.ts).
// The rules:
// 1. A record is written inside the transaction of its change, as its last statements (after the
//    change's own row locks and writes), so it exists exactly when the change does. A breaker trip is
//    recorded by the transaction that turned the webhook off: it holds the webhook's row lock and found it
//    active. Another replica applying the same trip finds it disabled and records nothing.
// 2. Ids come from a sequence, and every writer first takes one transaction-scoped advisory lock
//    (activityLock), held until it commits. A record's id is therefore taken only after every record with
//    a smaller id committed or rolled back: ids are commit order, and a reader that has seen id N has seen
//    every record up to N. That makes the id the cursor. Activity is rare (configuration changes, trips),
//    so one lock for all writers costs nothing measurable.
// 3. Each write notifies the channel `webhook_activity` with the workspace id; PostgreSQL delivers it at
//    commit, to every replica's listening connection (feed.ts).
// 4. Records go with the delivery log's retention (LOG_RETENTION), oldest first, in small batches.
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { checkResourceId, checkWorkspaceId, invalidArgument } from '@webhooks/domain';
import { epochMs } from '../persistence/raw-sql.js';

export const activityKinds = ['created', 'edited', 'secret_rotated', 'auth_changed', 'deactivated', 'activated', 'disabled_by_breaker', 'disabled_by_plan', 'deliveries_recovered', 'deleted'] as const;
export type ActivityKindName = (typeof activityKinds)[number];

/** Who made a change: a caller of the API by its token's name, a portal user on the portal's token, or the platform. */
export interface Actor {
  readonly kind: 'api_token' | 'portal_session' | 'operator' | 'system';
  /** The token's or operator's name; "breaker" or "plan" for the system; empty for a portal session. */
  readonly name: string;
  /** The API token the change came through; empty for the system. */
  readonly tokenName: string;
}

export const systemActor = (name: 'breaker' | 'plan'): Actor => ({ kind: 'system', name, tokenName: '' });

/** Who a change is recorded as when the caller names nobody: tests and tools that call the control plane directly. */
export const unattributed: Actor = { kind: 'api_token', name: 'unattributed', tokenName: '' };

/** What a record says beyond its kind; each kind fills its own part. */
export interface ActivityDetails {
  /** edited: the fields that changed. */
  readonly fields?: readonly string[];
  /** disabled_by_breaker. */
  readonly failureCount?: number;
  readonly windowSeconds?: number;
  readonly lastError?: string;
  /** disabled_by_plan: the workspace's new plan. */
  readonly plan?: string;
  /** deliveries_recovered. */
  readonly recoveredCount?: number;
  readonly recoveredSince?: string;
  /** auth_changed: the kind set now, null once removed. */
  readonly authKind?: string | null;
}

export interface ActivityEntry {
  readonly workspaceId: string;
  readonly webhookId: string;
  readonly webhookName: string;
  readonly kind: ActivityKindName;
  readonly actor: Actor;
  readonly details?: ActivityDetails;
}

export interface ActivityRecord extends Required<Omit<ActivityEntry, 'details'>> {
  /** The sequence id, as text (a bigint). */
  readonly id: string;
  readonly details: ActivityDetails;
  readonly createdAt: Date;
}

/** The advisory lock every writer holds from its insert to its commit (rule 2); any fixed number. */
const activityLock = 7_215_301_911;
export const activityChannel = 'webhook_activity';

/** Writes the records inside `em`'s transaction, as its last statements (rules 1-3). */
export async function recordActivity(em: EntityManager, entries: readonly ActivityEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await em.execute('SELECT pg_advisory_xact_lock(?)', [activityLock]);
  const rows = entries.map((entry) => ({
    workspace_id: entry.workspaceId,
    webhook_id: entry.webhookId,
    webhook_name: entry.webhookName,
    kind: entry.kind,
    actor_kind: entry.actor.kind,
    actor_name: entry.actor.name,
    token_name: entry.actor.tokenName,
    details: entry.details ?? {},
  }));
  await em.execute(
    `INSERT INTO webhook_activity (workspace_id, webhook_id, webhook_name, kind, actor_kind, actor_name, token_name, details)
     SELECT workspace_id, webhook_id, webhook_name, kind, actor_kind, actor_name, token_name, details
       FROM jsonb_to_recordset(?::jsonb) AS r(workspace_id text, webhook_id text, webhook_name text, kind text, actor_kind text, actor_name text, token_name text, details jsonb)`,
    [JSON.stringify(rows)],
    'run',
  );
  for (const workspaceId of new Set(entries.map((entry) => entry.workspaceId))) await em.execute('SELECT pg_notify(?, ?)', [activityChannel, workspaceId]);
}

interface Row {
  id: string | number;
  workspace_id: string;
  webhook_id: string;
  webhook_name: string;
  kind: ActivityKindName;
  actor_kind: Actor['kind'];
  actor_name: string;
  token_name: string;
  details: ActivityDetails | string;
  created_ms: number | string;
}

// The id leaves as text (a bigint); ordering and comparisons use the column itself, never the text.
const columns = `webhook_activity.id::text AS id, workspace_id, webhook_id, webhook_name, kind, actor_kind, actor_name, token_name, details, ${epochMs('created_at')} AS created_ms`;

function recordOf(row: Row): ActivityRecord {
  return {
    id: String(row.id),
    workspaceId: row.workspace_id,
    webhookId: row.webhook_id,
    webhookName: row.webhook_name,
    kind: row.kind,
    actor: { kind: row.actor_kind, name: row.actor_name, tokenName: row.token_name },
    details: typeof row.details === 'string' ? (JSON.parse(row.details) as ActivityDetails) : row.details,
    createdAt: new Date(Number(row.created_ms)),
  };
}

/** The cursor of a record: its id, opaque to clients. */
export function cursorOf(record: Pick<ActivityRecord, 'id'>): string {
  return Buffer.from(`activity:${record.id}`).toString('base64url');
}

/** The id a cursor stands for; "0" for an empty cursor (before the first record). */
export function idOfCursor(cursor: string, field = 'cursor'): string {
  if (cursor === '') return '0';
  const match = /^activity:(\d{1,19})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw invalidArgument(field, 'is not a cursor from an activity record; pass a record\'s cursor, or none to start from the oldest record kept');
  return match[1]!;
}

export interface ActivityFilter {
  readonly webhookId?: string;
  readonly from?: Date;
  readonly to?: Date;
}

const defaultPageSize = 50;
const maxPageSize = 100;

/** A workspace's records, newest first, paged by id. */
export async function listActivity(em: EntityManager, workspaceId: string, filter: ActivityFilter, pageSize: number, pageToken: string): Promise<{ records: ActivityRecord[]; nextPageToken: string }> {
  checkWorkspaceId(workspaceId);
  if (filter.webhookId) checkResourceId(filter.webhookId, 'webhook_id');
  if (pageSize < 0 || pageSize > maxPageSize) throw invalidArgument('page_size', `must be between 0 and ${maxPageSize}`);
  if (filter.from && filter.to && filter.from >= filter.to) throw invalidArgument('start_time', 'must be before end_time');
  const limit = pageSize || defaultPageSize;
  const before = pageToken ? idOfCursor(pageToken, 'page_token') : undefined;
  const conditions = ['workspace_id = ?'];
  const params: unknown[] = [workspaceId];
  const where = (condition: string, value: unknown) => {
    conditions.push(condition);
    params.push(value);
  };
  if (filter.webhookId) where('webhook_id = ?', filter.webhookId);
  if (filter.from) where('created_at >= ?', filter.from);
  if (filter.to) where('created_at < ?', filter.to);
  if (before) where('webhook_activity.id < ?::bigint', before);
  const rows = await em.execute<Row[]>(`SELECT ${columns} FROM webhook_activity WHERE ${conditions.join(' AND ')} ORDER BY webhook_activity.id DESC LIMIT ?`, [...params, limit + 1]);
  const records = rows.slice(0, limit).map(recordOf);
  return { records, nextPageToken: rows.length > limit ? cursorOf(records[records.length - 1]!) : '' };
}

/** Records after `afterId`, oldest first: one workspace's, or every workspace's when none is named. */
export async function activityAfter(em: EntityManager, workspaceId: string | undefined, afterId: string, limit: number): Promise<ActivityRecord[]> {
  const rows = await em.execute<Row[]>(
    `SELECT ${columns} FROM webhook_activity WHERE webhook_activity.id > ?::bigint ${workspaceId ? 'AND workspace_id = ?' : ''} ORDER BY webhook_activity.id LIMIT ?`,
    workspaceId ? [afterId, workspaceId, limit] : [afterId, limit],
  );
  return rows.map(recordOf);
}

/** Removes records older than `before`, a batch per statement (rule 4); returns how many went. */
export async function deleteOldActivity(orm: MikroORM, before: Date, batchSize: number): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await orm.em.getConnection().execute(
      'DELETE FROM webhook_activity WHERE id IN (SELECT id FROM webhook_activity WHERE created_at < ? ORDER BY id LIMIT ?)',
      [before, batchSize],
      'run',
    );
    const removed = (result as { affectedRows?: number }).affectedRows ?? 0;
    total += removed;
    if (removed < batchSize) return total;
  }
}

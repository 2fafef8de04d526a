// The delivery log's tables by day (the migration Migration20261205150000_partitioned_delivery_log). The rules:
// 1. deliveries, attempts and event_bodies are partitioned by range of created_at, one partition per UTC
//    day (`<table>_pYYYYMMDD`). A delivery's created_at is the time its event was accepted; its attempts
//    and its body carry the same created_at, so one day's three partitions hold whole deliveries, and a
//    read of one delivery names the day (created_at) so PostgreSQL looks in one partition.
// 2. An event's body is stored once, keyed by (workspace, event id, created_at): the deliveries of one
//    event to several webhooks share it. A delivery sent again (RetryDelivery, RecoverDeliveries) is a
//    new delivery with a time of its own, and stores its body again.
// 3. A day's partitions exist before its first row is written: a writer asks for the days of its rows it
//    has not asked for yet (one statement, log_ensure_partitions, then remembered for this database); a
//    write that still finds no partition (retention dropped a day remembered here, or another process
//    did) asks again and writes once more. Retention also makes the next two days ahead.
// 4. Retention drops whole days: a day's partitions go once the day ended before now - LOG_RETENTION, so
//    a row is kept for LOG_RETENTION and at most one day more. No row is deleted one by one.
// 5. Making and dropping partitions take one advisory lock, so replicas do not collide in the catalog.
// Eviction: the days remembered per database are the days written to, one entry per day.
import type { MikroORM } from '@mikro-orm/postgresql';

/** Runs one SQL statement with positional parameters ($1...). */
export type Query = (sql: string, params: unknown[]) => Promise<unknown>;

const logTables = ['deliveries', 'attempts', 'event_bodies'] as const;
const dayMs = 86_400_000;
/** Days made ahead by each retention run (rule 3). */
const daysAhead = 2;
const lockKey = "hashtext('webhooks.log_partitions')";

/** The UTC day of a time, as PostgreSQL's date literal (YYYY-MM-DD). */
export function dayOf(time: Date): string {
  return time.toISOString().slice(0, 10);
}

/** The days this process made sure of, per database (rule 3). */
const ensuredDays = new WeakMap<object, Set<string>>();

function ensuredOf(database: object): Set<string> {
  let days = ensuredDays.get(database);
  if (!days) {
    days = new Set();
    ensuredDays.set(database, days);
  }
  return days;
}

/** Makes sure the partitions of these days (YYYY-MM-DD) exist; one statement when a day is new here. */
export async function ensureDays(database: object, query: Query, days: readonly string[]): Promise<void> {
  const known = ensuredOf(database);
  const missing = [...new Set(days)].filter((day) => !known.has(day));
  if (missing.length === 0) return;
  // An array literal rather than an array: the drivers expand arrays into lists of parameters differently.
  await query('SELECT log_ensure_partitions($1::date[])', [`{${missing.join(',')}}`]);
  for (const day of missing) known.add(day);
}

/** Whether PostgreSQL refused a row because no partition holds its day. */
export function isMissingPartition(error: unknown): boolean {
  const { code, message } = error as { code?: string; message?: string };
  return code === '23514' && typeof message === 'string' && message.startsWith('no partition of relation');
}

/**
 * Runs a write of rows of these days after making sure the days exist (rule 3); when PostgreSQL still
 * finds no partition, forgets what this process knew of the days, makes them again and runs the write
 * once more.
 */
export async function withDays<T>(database: object, query: Query, days: readonly string[], write: () => Promise<T>): Promise<T> {
  await ensureDays(database, query, days);
  try {
    return await write();
  } catch (error) {
    if (!isMissingPartition(error)) throw error;
    ensuredOf(database).clear();
    await ensureDays(database, query, days);
    return write();
  }
}

/** Statements through MikroORM's connection (which takes `?` for each parameter). */
export function queryThrough(orm: MikroORM): Query {
  return (sql, params) => orm.em.getConnection().execute(sql.replace(/\$\d+/g, '?'), params);
}

/** The days whose partitions exist, oldest first (the deliveries table's; the three are made together). */
export async function partitionDays(orm: MikroORM): Promise<string[]> {
  const rows = (await orm.em.getConnection().execute(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'deliveries'::regclass ORDER BY c.relname`,
  )) as { name: string }[];
  return rows.flatMap(({ name }) => {
    const match = /_p(\d{4})(\d{2})(\d{2})$/.exec(name);
    return match ? [`${match[1]}-${match[2]}-${match[3]}`] : [];
  });
}

/**
 * Retention (rule 4): drops the partitions of every day that ended before `before`, in the three tables,
 * and makes the next days ahead (rule 3). Returns the days dropped.
 */
export async function dropOldDays(orm: MikroORM, before: Date, now = new Date()): Promise<string[]> {
  const ahead = Array.from({ length: daysAhead + 1 }, (_, n) => dayOf(new Date(now.getTime() + n * dayMs)));
  await ensureDays(orm, queryThrough(orm), ahead);
  const old = (await partitionDays(orm)).filter((day) => Date.parse(`${day}T00:00:00Z`) + dayMs <= before.getTime());
  for (const day of old) {
    await orm.em.fork().transactional(async (em) => {
      const connection = em.getConnection();
      await connection.execute(`SELECT pg_advisory_xact_lock(${lockKey})`, [], 'all', em.getTransactionContext());
      for (const table of logTables) {
        await connection.execute(`DROP TABLE IF EXISTS "${table}_p${day.replaceAll('-', '')}"`, [], 'run', em.getTransactionContext());
      }
    });
  }
  // A day dropped here and written to again later (a late record) is made again on its write (rule 3).
  const known = ensuredOf(orm);
  for (const day of old) known.delete(day);
  return old;
}

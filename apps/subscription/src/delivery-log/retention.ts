// Deletes deliveries (with their attempts and bodies) older than the retention age, a small batch per
// statement so no statement holds locks for long or competes with the log writer.
import type { MikroORM } from '@mikro-orm/postgresql';

const deleteBatchSql = `
WITH old AS (SELECT id FROM deliveries WHERE created_at < ? ORDER BY created_at LIMIT ?),
removed_attempts AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM old))
DELETE FROM deliveries WHERE id IN (SELECT id FROM old)`;

/** Removes everything older than `before`; returns how many deliveries went. */
export async function deleteOldDeliveries(orm: MikroORM, before: Date, batchSize: number): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await orm.em.getConnection().execute(deleteBatchSql, [before, batchSize], 'run');
    const removed = (result as { affectedRows?: number }).affectedRows ?? 0;
    total += removed;
    if (removed < batchSize) return total;
  }
}

import { MikroORM } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { entities } from './entities.js';
import { migrations } from '../migrations/index.js';

export type Orm = MikroORM;

export async function openOrm(databaseUrl: string, log: (message: string) => void): Promise<MikroORM> {
  return MikroORM.init({
    clientUrl: databaseUrl,
    entities,
    extensions: [Migrator],
    migrations: { migrationsList: migrations, snapshot: false, transactional: true, allOrNothing: true },
    // MikroORM's own messages (migrations, warnings) go through the service's JSON logger.
    logger: log,
    colors: false,
    pool: { min: 1, max: 10 },
    // The service is the only writer; no entity discovery from files at run time.
    discovery: { warnWhenNoEntities: true },
  });
}

/** Applies every committed migration that has not run yet. */
export async function migrate(orm: MikroORM): Promise<string[]> {
  const applied = await orm.migrator.up();
  return applied.map((m) => m.name);
}

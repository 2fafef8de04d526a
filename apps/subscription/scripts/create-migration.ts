// Writes a new migration into src/migrations from the difference between the entities and a scratch
// database that has every committed migration applied. Usage:
//   npm run migration:create -w @webhooks/subscription -- <name>
// then add the new class to src/migrations/index.ts and commit both.
import { Migrator } from '@mikro-orm/migrations';
import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { entities } from '../src/persistence/entities.js';
import { migrations } from '../src/migrations/index.js';

const name = process.argv[2];
if (!name) throw new Error('usage: create-migration <name>');
const server = process.env.POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const scratch = `migration_scratch_${Date.now()}`;
const admin = new pg.Client({ connectionString: server });
await admin.connect();
await admin.query(`CREATE DATABASE ${scratch}`);
try {
  const url = new URL(server);
  url.pathname = `/${scratch}`;
  const orm = await MikroORM.init({
    clientUrl: url.toString(),
    entities,
    extensions: [Migrator],
    migrations: { path: new URL('../src/migrations', import.meta.url).pathname, migrationsList: migrations, snapshot: false, emit: 'ts' },
  });
  await orm.migrator.up();
  const result = await orm.migrator.create(undefined, false, migrations.length === 0, name);
  console.log(result.fileName ? `wrote src/migrations/${result.fileName}` : 'no schema changes');
  await orm.close();
} finally {
  await admin.query(`DROP DATABASE ${scratch} WITH (FORCE)`);
  await admin.end();
}

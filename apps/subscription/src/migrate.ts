// Applies pending database migrations and exits: the Kubernetes migration Job runs this before the
// subscription service starts (which then runs with MIGRATE_ON_START=false).
import { ConfigError, defineConfig, field } from '@webhooks/config';
import { createLogger } from '@webhooks/telemetry';
import { migrate, openOrm } from './persistence/orm.js';

const logger = createLogger('subscription-migrate');
const config = defineConfig({ databaseUrl: field.string('DATABASE_URL', 'PostgreSQL connection URL', 'postgres://postgres@127.0.0.1:5432/webhooks') });

try {
  const { databaseUrl } = config.parse(process.env);
  const orm = await openOrm(databaseUrl, (message) => logger.debug({ component: 'orm' }, message));
  try {
    const applied = await migrate(orm);
    logger.info({ applied }, applied.length > 0 ? 'migrations applied' : 'database is up to date');
  } finally {
    await orm.close();
  }
} catch (error) {
  if (error instanceof ConfigError) logger.fatal({ problems: error.problems }, error.message);
  else logger.fatal({ err: error }, 'migration failed');
  process.exit(1);
}

import pg from 'pg';
import { testEnvironment, uniqueName } from './names.js';

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: testEnvironment.postgresUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A new, empty database on the test PostgreSQL server; drop() removes it even with open connections. */
export async function createTestDatabase(base = 'wh_test'): Promise<TestDatabase> {
  const name = uniqueName(base);
  await admin((client) => client.query(`CREATE DATABASE ${name}`));
  return {
    name,
    url: withDatabase(testEnvironment.postgresUrl, name),
    drop: () => admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

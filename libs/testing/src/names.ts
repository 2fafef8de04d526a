import { randomBytes } from 'node:crypto';

/** A name no other test run uses: lower-case letters, digits and "_". */
export function uniqueName(base: string): string {
  return `${base}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

export const testEnvironment = {
  natsUrl: process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222',
  postgresUrl: process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
};

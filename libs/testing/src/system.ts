import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeliveryLogServiceClient, IngestServiceClient, SubscriptionServiceClient } from '@webhooks/contracts';
import { createTestDatabase, type TestDatabase } from './database.js';
import { insecure } from './grpc-client.js';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { testEnvironment, uniqueName } from './names.js';
import { ServiceProcess, type ServiceName } from './service-process.js';
import { connectNats, topology } from '@webhooks/messaging';
import { removeTopology as removeTopologyOn } from './nats.js';

export const testToken = 'test-token-0123456789';

export interface RunningSystem {
  readonly prefix: string;
  readonly database: TestDatabase;
  readonly env: Record<string, string>;
  readonly services: Map<ServiceName, ServiceProcess[]>;
  readonly subscription: SubscriptionServiceClient;
  readonly deliveryLog: DeliveryLogServiceClient;
  readonly ingest: IngestServiceClient;
  /** Starts one more process of a service with the system's environment (e.g. a second dispatcher). */
  startService(name: ServiceName, extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  /** Stops every process (SIGTERM), removes the database, streams and buckets; returns each exit code. */
  /** Stops every service (SIGTERM, then SIGKILL after `graceMs`), removes the streams, the database and the outbox. */
  stop(graceMs?: number): Promise<Record<string, (number | null)[]>>;
}

/** The shortest whole-second lease time, at least 6 s, that a request of `attemptTimeout` ('300ms', '2s'; 5 s unset) fits in. */
function leaseTtlSecondsFor(attemptTimeout: string | undefined): number {
  const match = /^(\d+)(ms|s)$/.exec(attemptTimeout?.trim() ?? '5s');
  if (!match) throw new Error(`ATTEMPT_TIMEOUT ${attemptTimeout} in a test: write it as <n>ms or <n>s, or set DISPATCH_LEASE_TTL`);
  const ms = Number(match[1]) * (match[2] === 's' ? 1_000 : 1);
  return Math.max(6, Math.ceil(Math.max(2 * (ms + 100), ms / 0.45) / 1_000));
}

/**
 * The four services as processes from their builds, on a fresh database and messaging prefix, with
 * ports chosen by the OS. `env` is added to every service's environment (e.g. scaled retry delays);
 * `clientCredentials` are the returned clients' (TLS credentials when `env` turns GRPC_TLS_* on).
 */
export async function startSystem(env: Record<string, string> = {}, clientCredentials: ChannelCredentials = insecure): Promise<RunningSystem> {
  const database = await createTestDatabase();
  const prefix = uniqueName('t');
  const outbox = mkdtempSync(join(tmpdir(), 'outbox-'));
  // Removed by stop(); and when the test process ends without it (a failed before hook, a test cut off).
  const removeOutbox = () => rmSync(outbox, { recursive: true, force: true });
  process.once('exit', removeOutbox);
  const baseEnv: Record<string, string> = {
    PROFILE: 'local',
    DATABASE_URL: database.url,
    NATS_URL: testEnvironment.natsUrl,
    MESSAGING_PREFIX: prefix,
    API_TOKENS: testToken,
    SUBSCRIPTION_GRPC_PORT: '0',
    INGEST_GRPC_PORT: '0',
    DISPATCHER_HEALTH_PORT: '0',
    NOTIFIER_HEALTH_PORT: '0',
    SUBSCRIPTION_OPS_PORT: '0',
    INGEST_OPS_PORT: '0',
    DISPATCHER_OPS_PORT: '0',
    NOTIFIER_OPS_PORT: '0',
    NOTIFIER_API_TOKEN: testToken,
    // Dispatcher replicas that die are replaced within this plus a third (15 s in production); shorter
    // leases flap on a busy 2-core machine. A request must fit in a lease (the dispatcher refuses a TTL
    // under about 2.2 × ATTEMPT_TIMEOUT): 12 s for the default 5 s.
    DISPATCH_LEASE_TTL: `${leaseTtlSecondsFor(env.ATTEMPT_TIMEOUT)}s`,
    EMAIL_OUTBOX_DIR: outbox,
    ...env,
  };
  const services = new Map<ServiceName, ServiceProcess[]>();
  const startService = async (name: ServiceName, extraEnv: Record<string, string> = {}) => {
    const service = await ServiceProcess.start(name, { ...baseEnv, ...extraEnv });
    services.set(name, [...(services.get(name) ?? []), service]);
    return service;
  };
  const clients: { close(): void }[] = [];
  const stopAll = async (graceMs?: number) => {
    for (const client of clients) client.close();
    const codes: Record<string, (number | null)[]> = {};
    await Promise.all(
      [...services.entries()].map(async ([name, processes]) => {
        codes[name] = await Promise.all(processes.map((service) => service.stop(graceMs)));
      }),
    );
    return codes;
  };
  try {
    // The control plane first: it migrates the database and fills the routing table.
    const subscriptionProcess = await startService('subscription');
    baseEnv.SUBSCRIPTION_ADDRESS = subscriptionProcess.address();
    const [ingestProcess] = await Promise.all([startService('event-ingest'), startService('dispatcher'), startService('notifier')]);
    const subscription = new SubscriptionServiceClient(subscriptionProcess.address(), clientCredentials);
    const deliveryLog = new DeliveryLogServiceClient(subscriptionProcess.address(), clientCredentials);
    const ingest = new IngestServiceClient(ingestProcess.address(), clientCredentials);
    clients.push(subscription, deliveryLog, ingest);
    return {
      prefix,
      database,
      env: baseEnv,
      services,
      subscription,
      deliveryLog,
      ingest,
      startService,
      async stop(graceMs?: number) {
        const codes = await stopAll(graceMs);
        await removeTopology(prefix, baseEnv.NATS_URL!).catch(() => undefined);
        await database.drop();
        removeOutbox();
        process.off('exit', removeOutbox);
        return codes;
      },
    };
  } catch (error) {
    await stopAll();
    await removeTopology(prefix, baseEnv.NATS_URL!).catch(() => undefined);
    await database.drop();
    removeOutbox();
    process.off('exit', removeOutbox);
    throw error;
  }
}

async function removeTopology(prefix: string, natsUrl: string): Promise<void> {
  const nc = await connectNats(natsUrl, `cleanup-${prefix}`);
  try {
    await removeTopologyOn(nc, topology({ prefix }));
  } finally {
    await nc.close();
  }
}

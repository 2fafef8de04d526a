import { connectNats, ensureTopology, jetstreamManager, streamNames, topology, type NatsConnection, type Topology } from '@webhooks/messaging';

/** Deletes every stream and bucket of a topology. */
export async function removeTopology(nc: NatsConnection, t: Topology): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const names = [...streamNames(t), ...Object.values(t.buckets).map((bucket) => `KV_${bucket}`)];
  for (const name of names) await jsm.streams.delete(name).catch(() => false);
}
import { testEnvironment, uniqueName } from './names.js';

export interface TestTopology {
  readonly prefix: string;
  readonly topology: Topology;
  readonly nc: NatsConnection;
  /** Deletes every stream and bucket of the prefix and closes the connection. */
  remove(): Promise<void>;
}

/** A topology under a fresh prefix on the test NATS server, created and ready. */
export async function createTestTopology(options: Partial<Topology['options']> = {}): Promise<TestTopology> {
  const prefix = uniqueName('t');
  const t = topology({ ...options, prefix });
  const nc = await connectNats(testEnvironment.natsUrl, `test-${prefix}`);
  await ensureTopology(nc, t);
  return {
    prefix,
    topology: t,
    nc,
    async remove() {
      await removeTopology(nc, t);
      await nc.close();
    },
  };
}

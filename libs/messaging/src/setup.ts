// Creating the topology is idempotent: every service ensures it at start, so start order does not matter.
import { JetStreamApiError, jetstream, jetstreamManager, type ConsumerConfig, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { streamConfigs, type Topology } from './topology.js';
import { coalesceWrites } from './write-coalescing.js';

export async function connectNats(servers: string, name: string): Promise<NatsConnection> {
  // noAsyncTraces: the client would otherwise build an Error (capturing a stack) for every request and
  // publish, in case it fails; that was a sixth of ingest's and the dispatcher's CPU under load.
  const nc = await connect({ servers: servers.split(','), name, maxReconnectAttempts: -1, reconnectTimeWait: 500, noAsyncTraces: true });
  coalesceWrites(nc);
  return nc;
}

async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig>): Promise<void> {
  try {
    await jsm.streams.info(config.name!);
    await jsm.streams.update(config.name!, config);
  } catch (error) {
    if (!(error instanceof JetStreamApiError) || error.status !== 404) throw error;
    try {
      await jsm.streams.add({ ...config, name: config.name! });
    } catch (addError) {
      // Another service created it at the same moment.
      if (!(addError instanceof JetStreamApiError)) throw addError;
      await jsm.streams.update(config.name!, config);
    }
  }
}

export interface Buckets {
  readonly routes: KV;
  readonly breaker: KV;
}

/** Creates or updates every stream and bucket of the topology, and opens the buckets. */
export async function ensureTopology(nc: NatsConnection, t: Topology): Promise<{ jsm: JetStreamManager; buckets: Buckets }> {
  const jsm = await jetstreamManager(nc);
  for (const config of streamConfigs(t)) await ensureStream(jsm, config);
  const kvm = new Kvm(jetstream(nc));
  const kvOptions = { history: 1, replicas: t.options.replicas };
  const routes = await kvm.create(t.buckets.routes, kvOptions);
  const breaker = await kvm.create(t.buckets.breaker, kvOptions);
  return { jsm, buckets: { routes, breaker } };
}

/** Creates a durable consumer, or brings an existing one to this configuration (idempotent). */
export async function ensureConsumer(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
  await jsm.consumers.add(stream, config).catch(async (error: unknown) => {
    if (!(error instanceof JetStreamApiError)) throw error;
    await jsm.consumers.update(stream, config.durable_name, config);
  });
}

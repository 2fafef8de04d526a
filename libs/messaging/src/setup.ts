// Creating the topology is idempotent: every service ensures it at start, so start order does not matter.
import { JetStreamApiError, jetstream, jetstreamManager, type ConsumerConfig, type ConsumerInfo, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type Bucket, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { acceptedBucketOptions, dispatchersBucketOptions, streamConfigs, type Topology } from './topology.js';
import { countConnection } from './connection-metrics.js';
import { coalesceWrites } from './write-coalescing.js';
import { cheapRequestCancel } from './request-cancel.js';

export async function connectNats(servers: string, name: string): Promise<NatsConnection> {
  // noAsyncTraces: the client would otherwise build an Error (capturing a stack) for every request and
  // publish, in case it fails; that was a sixth of ingest's and the dispatcher's CPU under load.
  cheapRequestCancel();
  const nc = await connect({ servers: servers.split(','), name, maxReconnectAttempts: -1, reconnectTimeWait: 500, noAsyncTraces: true });
  coalesceWrites(nc);
  countConnection(nc);
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
  readonly accepted: KV;
}

const nanosPerMs = 1_000_000;
/** The client's default duplicate window of a bucket's stream; it may not exceed the bucket's TTL. */
const bucketDuplicateWindowMs = 2 * 60_000;

/**
 * Opens a bucket with a TTL, creating it when missing. Kvm.create leaves an existing bucket's
 * configuration as it is, so a changed TTL (IDEMPOTENCY_WINDOW) is written to the bucket's stream here;
 * every service does this at start with the same shared setting.
 */
async function ensureBucketWithTtl(jsm: JetStreamManager, kvm: Kvm, name: string, options: { history: number; replicas: number; ttl: number; storage: StreamConfig['storage'] }): Promise<KV> {
  const kv = await kvm.create(name, options);
  const stream = `KV_${name}`;
  const { config } = await jsm.streams.info(stream);
  const maxAge = options.ttl * nanosPerMs;
  if (config.max_age !== maxAge) {
    await jsm.streams.update(stream, { max_age: maxAge, duplicate_window: Math.min(bucketDuplicateWindowMs, options.ttl) * nanosPerMs });
  }
  return kv;
}

/** How long start-up keeps trying setup requests that JetStream left unanswered or answered as unavailable. */
export const setupRetryBudgetMs = 60_000;

/** No answer, or JetStream says it is temporarily unavailable (503): what a cluster electing leaders gives. */
function isTransient(error: unknown): boolean {
  if (error instanceof JetStreamApiError) return error.status === 503;
  return (error as { name?: string } | undefined)?.name === 'TimeoutError';
}

/**
 * Runs an idempotent setup step, trying it again (250 ms doubling to 4 s) while it fails transiently, for
 * up to `budgetMs`: a service started while its NATS cluster elects stream or meta leaders (a server was
 * just killed or restarted) waits for them instead of exiting. Any other error, or the last transient
 * one once the budget is spent, is thrown.
 */
export async function whileUnavailable<T>(step: () => Promise<T>, budgetMs = setupRetryBudgetMs, initialDelayMs = 250): Promise<T> {
  const deadline = Date.now() + budgetMs;
  for (let delayMs = initialDelayMs; ; delayMs = Math.min(delayMs * 2, 4_000)) {
    try {
      return await step();
    } catch (error) {
      if (!isTransient(error) || Date.now() + delayMs > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/**
 * Creates or updates every stream and bucket of the topology, and opens the buckets; tried again as a
 * whole while JetStream is transiently unavailable (every step is idempotent).
 */
export function ensureTopology(nc: NatsConnection, t: Topology): Promise<{ jsm: JetStreamManager; buckets: Buckets }> {
  return whileUnavailable(() => ensureTopologyOnce(nc, t));
}

async function ensureTopologyOnce(nc: NatsConnection, t: Topology): Promise<{ jsm: JetStreamManager; buckets: Buckets }> {
  const jsm = await jetstreamManager(nc);
  for (const config of streamConfigs(t)) await ensureStream(jsm, config);
  const kvm = new Kvm(jetstream(nc));
  const kvOptions = { history: 1, replicas: t.options.replicas };
  const routes = await kvm.create(t.buckets.routes, kvOptions);
  const breaker = await kvm.create(t.buckets.breaker, kvOptions);
  // A fresh acceptance must be seen by the next lookup, on whichever ingest replica.
  const accepted = readFromLeader(await ensureBucketWithTtl(jsm, kvm, t.buckets.accepted, acceptedBucketOptions(t)));
  return { jsm, buckets: { routes, breaker, accepted } };
}

/**
 * The dispatchers' bucket of memberships and shard leases. Only dispatchers call this (they share the
 * lease time setting), so no other service resets its age limit.
 */
export async function ensureDispatchersBucket(nc: NatsConnection, t: Topology, leaseTtlMs: number): Promise<KV> {
  // Every lease request gives up after a sixth of the lease time (at most 5 s): a request left unanswered
  // while NATS elects a leader must not hold a heartbeat so long that the leases it renews lapse; the next
  // heartbeat, a third of the lease time later, asks again.
  const js = jetstream(nc, { timeout: leaseRequestTimeoutMs(leaseTtlMs) });
  // A lease holder must never see an older entry than its own.
  return readFromLeader(await whileUnavailable(async () => ensureBucketWithTtl(await jetstreamManager(nc), new Kvm(js), t.buckets.dispatchers, dispatchersBucketOptions(t, leaseTtlMs))));
}

/** How long one request on the dispatchers' bucket may take: a sixth of the lease time, 500 ms to 5 s. */
export function leaseRequestTimeoutMs(leaseTtlMs: number): number {
  return Math.min(5_000, Math.max(500, Math.floor(leaseTtlMs / 6)));
}

/**
 * Reads of this bucket handle go to its stream's leader instead of direct gets: in a cluster a direct get
 * may be answered by a follower still catching up, which can show an entry older than one already
 * written. Used where an old answer is wrong rather than slow: the dispatchers' leases and the accepted
 * event ids (README, "Operating").
 */
export function readFromLeader(kv: KV): KV {
  (kv as Bucket).direct = false;
  return kv;
}

/** Creates a durable consumer, or brings an existing one to this configuration (idempotent). */
export async function ensureConsumer(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig> & { durable_name: string }): Promise<ConsumerInfo> {
  return jsm.consumers.add(stream, config).catch(async (error: unknown) => {
    if (!(error instanceof JetStreamApiError)) throw error;
    return jsm.consumers.update(stream, config.durable_name, config);
  });
}

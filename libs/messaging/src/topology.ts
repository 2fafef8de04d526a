// The one place that names the messaging topology: streams, subjects, consumers and KV buckets, and their
// configurations. Every service imports it; nobody spells a subject twice. A prefix (default "wh") lets
// tests and side-by-side installations run on one NATS server without seeing each other.
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, type ConsumerConfig, type StreamConfig } from '@nats-io/jetstream';

const prefixPattern = /^[a-z][a-z0-9_]{0,31}$/;
const nanosPerMs = 1_000_000;

/**
 * Delivery tasks are spread over this many streams, each webhook's in one of them, chosen by its id.
 * Every message a stream stores or removes makes the server visit each consumer of that stream (NATS
 * 2.9 does so in a loop), so a stream per few dozen webhooks instead of one for all keeps that cost
 * flat as webhooks are added; in a cluster the streams also spread over the servers. Never change it
 * on an installation that has tasks queued: they would be looked for in the wrong stream.
 */
export const deliverShards = 16;

/** The delivery stream (0..deliverShards-1) of a webhook: FNV-1a of its id. Stable across versions. */
export function deliverShardOf(webhookId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < webhookId.length; i++) {
    hash ^= webhookId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % deliverShards;
}

const shards = Array.from({ length: deliverShards }, (_, shard) => shard);

export interface TopologyOptions {
  /** Lower-case letters, digits and "_", starting with a letter. Default "wh". */
  readonly prefix: string;
  /** JetStream replicas per stream and bucket (1 for one server, 3 for a production cluster). */
  readonly replicas: number;
  /** How long a repeated event id is recognised and not queued again. */
  readonly idempotencyWindowMs: number;
  /** How long attempt records and breaker trips are kept for consumers that were away. */
  readonly recordRetentionMs: number;
}

export const defaultTopologyOptions: TopologyOptions = {
  prefix: 'wh',
  replicas: 1,
  idempotencyWindowMs: 10 * 60_000,
  recordRetentionMs: 7 * 24 * 3_600_000,
};

export type Topology = ReturnType<typeof topology>;

export function topology(options: Partial<TopologyOptions> = {}) {
  const o = { ...defaultTopologyOptions, ...options };
  if (!prefixPattern.test(o.prefix)) throw new Error(`messaging prefix "${o.prefix}" must be lower-case letters, digits or "_", starting with a letter`);
  // Zero would mean NATS's defaults instead: a 2-minute duplicate window and accepted ids kept forever.
  if (!(o.idempotencyWindowMs >= 1_000)) throw new Error(`the idempotency window (IDEMPOTENCY_WINDOW) must be at least 1s, got ${o.idempotencyWindowMs} ms`);
  const p = o.prefix;
  const P = p.toUpperCase();
  return {
    options: o,
    streams: {
      /** One delivery task per (event, webhook), on the webhook's own subject, in its shard's stream. */
      deliver: (webhookId: string) => `${P}_DELIVER_${deliverShardOf(webhookId)}`,
      /** Every delivery stream, one per shard. */
      deliverShards: shards.map((shard) => `${P}_DELIVER_${shard}`),
      /** The attempt records: single ones per webhook, batches per delivery shard. */
      attempts: `${P}_ATTEMPTS`,
      /** Breaker trips. */
      breaker: `${P}_BREAKER`,
    },
    subjects: {
      deliver: (workspaceId: string, webhookId: string) => `${p}.deliver.${deliverShardOf(webhookId)}.${workspaceId}.${webhookId}`,
      /** The new tasks of one delivery stream, consumed by its shard consumer. */
      deliverShard: (shard: number) => `${p}.deliver.${shard}.*.*`,
      /**
       * A webhook's parked tasks, in the same stream as its new ones: moved here, in order, while the
       * webhook retries or falls behind, and read (without a consumer) by the shard's owner (dispatcher park.ts).
       */
      park: (workspaceId: string, webhookId: string) => `${p}.park.${deliverShardOf(webhookId)}.${workspaceId}.${webhookId}`,
      /** Every parked task of one delivery stream. */
      parkShard: (shard: number) => `${p}.park.${shard}.*.*`,
      /**
       * One webhook's attempt records that a later attempt may need to read back (retries and drops), one
       * per message. The webhook's last one is looked up by subject.
       */
      attempt: (workspaceId: string, webhookId: string) => `${p}.attempts.${workspaceId}.${webhookId}`,
      /**
       * Batches of records (AttemptRecordBatch) of successful attempts in one delivery shard, stored
       * together by the shard's owner (dispatcher record-batches.ts). One token after "attempts", where a
       * webhook's subject has two.
       */
      attemptBatch: (shard: number) => `${p}.attempts.${shard}`,
      /** Whether a message of the attempts stream is a batch (else it is one record). */
      isAttemptBatch: (subject: string) => subject.startsWith(`${p}.attempts.`) && !subject.includes('.', `${p}.attempts.`.length),
      /** Every attempt record, single or batched. */
      attemptsAll: `${p}.attempts.>`,
      breakerTripped: (workspaceId: string) => `${p}.breaker.tripped.${workspaceId}`,
      breakerTrippedAll: `${p}.breaker.tripped.*`,
    },
    consumers: {
      /** The durable consumer of one delivery stream's new tasks, pulled only by the shard's owner. */
      shard: (shard: number) => `shard_${shard}`,
      /** Earlier versions' consumer per webhook on its new tasks; removed when a shard is taken. */
      legacyDeliveryPrefix: 'deliver_',
      /** The control plane's consumer of attempt records. */
      attemptLog: 'attempt_log',
      /** The control plane's and the notifier's consumers of breaker trips. */
      tripsToControlPlane: 'trips_control_plane',
      tripsToNotifier: 'trips_notifier',
    },
    buckets: {
      /** The routing table, written by the control plane, mirrored by ingest and dispatcher. */
      routes: `${p}_routes`,
      /** Failure windows per workspace, shared by dispatcher replicas. */
      breaker: `${p}_breaker`,
      /**
       * Event ids ingest has accepted, each with the webhooks it was queued for, kept for the idempotency
       * window. The delivery streams' own duplicate tables forget a delivered task's id when the server
       * restarts, so this bucket is what recognises a retried event then.
       */
      accepted: `${p}_accepted`,
      /**
       * Dispatcher replicas and the delivery shards each one owns (leases). Only the dispatcher creates it,
       * with its entries' age limit set to the lease time: a key nobody renews disappears by itself.
       */
      dispatchers: `${p}_dispatchers`,
    },
    keys: {
      workspace: (workspaceId: string) => `ws.${workspaceId}`,
      webhook: (workspaceId: string, webhookId: string) => `wh.${workspaceId}.${webhookId}`,
      webhooksOf: (workspaceId: string) => `wh.${workspaceId}.*`,
      /**
       * An accepted event in the accepted bucket. Event ids may hold ":" (not allowed in a key) and "."
       * (a token separator), so the id goes in as base64url: every valid id is one valid token.
       */
      acceptedEvent: (workspaceId: string, eventId: string) => `${workspaceId}.${Buffer.from(eventId, 'utf8').toString('base64url')}`,
      /** A live dispatcher replica, in the dispatchers bucket. */
      dispatcher: (replicaId: string) => `member.${replicaId}`,
      dispatchersAll: 'member.>',
      /** The lease of one delivery shard, in the dispatchers bucket. */
      shardLease: (shard: number) => `lease.${shard}`,
    },
  };
}

/** The accepted bucket keeps each event id for exactly the idempotency window, on disk. */
export function acceptedBucketOptions(t: Topology): { history: number; replicas: number; ttl: number; storage: StorageType } {
  return { history: 1, replicas: t.options.replicas, ttl: t.options.idempotencyWindowMs, storage: StorageType.File };
}

/** The dispatchers bucket: a lease or membership lives for one lease time after its last renewal. */
export function dispatchersBucketOptions(t: Topology, leaseTtlMs: number): { history: number; replicas: number; ttl: number; storage: StorageType } {
  return { history: 1, replicas: t.options.replicas, ttl: leaseTtlMs, storage: StorageType.File };
}

/** Every stream of the topology (the buckets' streams not included). */
export function streamNames(t: Topology): string[] {
  return [...t.streams.deliverShards, t.streams.attempts, t.streams.breaker];
}

export function streamConfigs(t: Topology): Partial<StreamConfig>[] {
  const common = { storage: StorageType.File, num_replicas: t.options.replicas, discard: DiscardPolicy.Old };
  return [
    ...t.streams.deliverShards.map((name, shard) => ({
      ...common,
      name,
      subjects: [t.subjects.deliverShard(shard), t.subjects.parkShard(shard)],
      // A task leaves the stream only when the dispatcher acks (delivered) or terms (dropped and recorded):
      // no age or size limit may remove an accepted event silently.
      retention: RetentionPolicy.Workqueue,
      duplicate_window: t.options.idempotencyWindowMs * nanosPerMs,
    })),
    {
      ...common,
      name: t.streams.attempts,
      subjects: [t.subjects.attemptsAll],
      retention: RetentionPolicy.Limits,
      max_age: t.options.recordRetentionMs * nanosPerMs,
      duplicate_window: 2 * 60_000 * nanosPerMs,
    },
    {
      ...common,
      name: t.streams.breaker,
      subjects: [t.subjects.breakerTrippedAll],
      retention: RetentionPolicy.Limits,
      max_age: t.options.recordRetentionMs * nanosPerMs,
      duplicate_window: 10 * 60_000 * nanosPerMs,
    },
  ];
}

/** Header on a parked task: the stream sequence it had among the new tasks. Its attempts so far are in the log. */
export const parkedFromHeader = 'Wh-Parked-From';

/** Header on a parked task: the tenure (one owner's hold of the shard) that parked it, for the reader's fence. */
export const parkedTenureHeader = 'Wh-Parked-Tenure';

/**
 * The consumer of one delivery stream's new tasks. Its owner keeps them in per-webhook lanes, so the
 * server's limit is how many tasks of the shard may be held at once (delivered, not yet acked).
 */
export function shardConsumerConfig(t: Topology, shard: number, ackWaitMs: number, maxAckPending: number): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: t.consumers.shard(shard),
    filter_subject: t.subjects.deliverShard(shard),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: maxAckPending,
    max_deliver: -1,
    ack_wait: ackWaitMs * nanosPerMs,
  };
}


import { defineConfig, field } from '@webhooks/config';

export const ingestConfig = defineConfig({
  profile: field.oneOf('PROFILE', 'local: development defaults; production: every secret must be configured', ['local', 'production'], 'local'),
  host: field.string('GRPC_HOST', 'address the gRPC server binds', '127.0.0.1'),
  port: field.integer('INGEST_GRPC_PORT', 'gRPC port of event-ingest (0 picks a free one)', 50052, { min: 0, max: 65535 }),
  natsUrl: field.string('NATS_URL', 'NATS server URL(s), comma-separated', 'nats://127.0.0.1:4222'),
  messagingPrefix: field.string('MESSAGING_PREFIX', 'prefix of every stream, subject and bucket', 'wh'),
  natsReplicas: field.integer('NATS_REPLICAS', 'JetStream replicas per stream and bucket', 1, { min: 1, max: 5 }),
  idempotencyWindow: field.duration('IDEMPOTENCY_WINDOW', 'how long a repeated event id is recognised and not delivered again', '10m'),
  apiTokens: field.list('API_TOKENS', 'accepted bearer tokens: TOKEN or TOKEN:WS1|WS2, comma-separated'),
  maxEventBytes: field.integer('MAX_EVENT_BYTES', 'largest delivered body of one event, in bytes', 262_144, { min: 1024 }),
  maxBatchEvents: field.integer('MAX_BATCH_EVENTS', 'most events in one PublishEvents call', 500, { min: 1 }),
  shutdownGrace: field.duration('SHUTDOWN_GRACE', 'how long calls in progress may take to finish on SIGTERM', '10s'),
});

export type IngestConfig = ReturnType<typeof ingestConfig.parse>;

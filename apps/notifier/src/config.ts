import { defineConfig, field } from '@webhooks/config';

export const notifierConfig = defineConfig({
  host: field.string('GRPC_HOST', 'address the health server binds', '127.0.0.1'),
  port: field.integer('NOTIFIER_HEALTH_PORT', 'gRPC health port of the notifier (0 picks a free one)', 50054, { min: 0, max: 65535 }),
  natsUrl: field.string('NATS_URL', 'NATS server URL(s), comma-separated', 'nats://127.0.0.1:4222'),
  messagingPrefix: field.string('MESSAGING_PREFIX', 'prefix of every stream, subject and bucket', 'wh'),
  natsReplicas: field.integer('NATS_REPLICAS', 'JetStream replicas per stream and bucket', 1, { min: 1, max: 5 }),
  shutdownGrace: field.duration('SHUTDOWN_GRACE', 'how long work in progress may take to finish on SIGTERM', '10s'),
});

import { defineConfig, field } from '@webhooks/config';

export const subscriptionConfig = defineConfig({
  profile: field.oneOf('PROFILE', 'local: development defaults; production: every secret must be configured', ['local', 'production'], 'local'),
  host: field.string('GRPC_HOST', 'address the gRPC server binds', '127.0.0.1'),
  port: field.integer('SUBSCRIPTION_GRPC_PORT', 'gRPC port of the subscription service (0 picks a free one)', 50051, { min: 0, max: 65535 }),
  databaseUrl: field.string('DATABASE_URL', 'PostgreSQL connection URL', 'postgres://postgres@127.0.0.1:5432/webhooks'),
  natsUrl: field.string('NATS_URL', 'NATS server URL(s), comma-separated', 'nats://127.0.0.1:4222'),
  messagingPrefix: field.string('MESSAGING_PREFIX', 'prefix of every stream, subject and bucket', 'wh'),
  natsReplicas: field.integer('NATS_REPLICAS', 'JetStream replicas per stream and bucket', 1, { min: 1, max: 5 }),
  apiTokens: field.list('API_TOKENS', 'accepted bearer tokens: TOKEN or TOKEN:WS1|WS2, comma-separated'),
  secretKey: field.string('SECRET_ENCRYPTION_KEY', 'base64 of 32 bytes that encrypts signing secrets at rest'),
  allowHttp: field.boolean('ALLOW_HTTP_ENDPOINTS', 'accept http:// endpoint URLs, not only https://', false),
  allowedHosts: field.list('ALLOWED_ENDPOINT_HOSTS', 'host names or CIDR ranges endpoints may use even though they are internal', []),
  maxWebhooksPerWorkspace: field.integer('MAX_WEBHOOKS_PER_WORKSPACE', 'webhooks one workspace may have', 20, { min: 1 }),
  secretRotationGrace: field.duration('SECRET_ROTATION_GRACE', 'how long the previous signing secret keeps signing after a rotation', '24h'),
  reconcileInterval: field.duration('ROUTES_RECONCILE_INTERVAL', 'how often the routing table is compared with PostgreSQL and repaired', '5m'),
  migrateOnStart: field.boolean('MIGRATE_ON_START', 'apply pending database migrations at start-up', true),
  shutdownGrace: field.duration('SHUTDOWN_GRACE', 'how long calls in progress may take to finish on SIGTERM', '10s'),
});

export type SubscriptionConfig = ReturnType<typeof subscriptionConfig.parse>;

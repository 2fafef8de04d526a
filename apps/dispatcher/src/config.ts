import { defineConfig, field } from '@webhooks/config';

export const dispatcherConfig = defineConfig({
  profile: field.oneOf('PROFILE', 'local: development defaults; production: every secret must be configured', ['local', 'production'], 'local'),
  host: field.string('GRPC_HOST', 'address the health server binds', '127.0.0.1'),
  port: field.integer('DISPATCHER_HEALTH_PORT', 'gRPC health port of the dispatcher (0 picks a free one)', 50053, { min: 0, max: 65535 }),
  natsUrl: field.string('NATS_URL', 'NATS server URL(s), comma-separated', 'nats://127.0.0.1:4222'),
  messagingPrefix: field.string('MESSAGING_PREFIX', 'prefix of every stream, subject and bucket', 'wh'),
  natsReplicas: field.integer('NATS_REPLICAS', 'JetStream replicas per stream and bucket', 1, { min: 1, max: 5 }),
  secretKey: field.string('SECRET_ENCRYPTION_KEY', 'base64 of 32 bytes that decrypts signing secrets (same key as the subscription service)'),
  allowHttp: field.boolean('ALLOW_HTTP_ENDPOINTS', 'deliver to http:// endpoint URLs, not only https://', false),
  allowedHosts: field.list('ALLOWED_ENDPOINT_HOSTS', 'host names or CIDR ranges endpoints may use even though they are internal', []),
  attemptTimeout: field.duration('ATTEMPT_TIMEOUT', 'an attempt fails unless the whole 2xx response arrives within this time', '5s'),
  retryDelays: field.durations('RETRY_DELAYS', 'wait after the 1st, 2nd, 3rd failed attempt', '30s,60s,90s'),
  giveUpAfter: field.duration('GIVE_UP_AFTER', 'no attempt starts later than this after the first one; the event is dropped', '3m'),
  ackWait: field.duration('DELIVERY_ACK_WAIT', 'after this long without an answer, a delivery in progress on a crashed replica is handed out again', '30s'),
  shutdownGrace: field.duration('SHUTDOWN_GRACE', 'how long attempts in progress may take to finish on SIGTERM', '10s'),
});

export type DispatcherConfig = ReturnType<typeof dispatcherConfig.parse>;

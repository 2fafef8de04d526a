import { field } from './schema.js';

/** Settings every service reads the same way; each app's schema spreads them in. */
export const sharedFields = {
  profile: field.oneOf('PROFILE', 'local: development defaults; production: every secret must be configured', ['local', 'production'], 'local'),
  host: field.string('GRPC_HOST', 'address the gRPC server binds', '127.0.0.1'),
  natsUrl: field.string('NATS_URL', 'NATS server URL(s), comma-separated', 'nats://127.0.0.1:4222'),
  messagingPrefix: field.string('MESSAGING_PREFIX', 'prefix of every stream, subject and bucket', 'wh'),
  natsReplicas: field.integer('NATS_REPLICAS', 'JetStream replicas per stream and bucket', 1, { min: 1, max: 5 }),
  shutdownGrace: field.duration('SHUTDOWN_GRACE', 'how long work in progress may take to finish on SIGTERM', '10s'),
};

/** The endpoint URL policy, read by the control plane (at creation) and the dispatcher (at delivery). */
export const urlPolicyFields = {
  allowHttp: field.boolean('ALLOW_HTTP_ENDPOINTS', 'accept and deliver to http:// endpoint URLs, not only https://', false),
  allowedHosts: field.list('ALLOWED_ENDPOINT_HOSTS', 'host names or CIDR ranges endpoints may use even though they are internal', []),
};

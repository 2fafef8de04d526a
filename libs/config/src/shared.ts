import { field } from './schema.js';

/** Settings every service reads the same way; each app's schema spreads them in. */
export const sharedFields = {
  profile: field.oneOf('PROFILE', 'local: development defaults; production: every secret must be configured', ['local', 'production'], 'local'),
  host: field.string('GRPC_HOST', 'address the gRPC server binds', '127.0.0.1'),
  natsUrl: field.string('NATS_URL', 'NATS server URL(s), comma-separated', 'nats://127.0.0.1:4222'),
  messagingPrefix: field.string('MESSAGING_PREFIX', 'prefix of every stream, subject and bucket', 'wh'),
  natsReplicas: field.integer('NATS_REPLICAS', 'JetStream replicas per stream and bucket', 1, { min: 1, max: 5 }),
  // Read by every service: each one ensures the topology at start, so each must configure the same
  // window (the delivery streams' duplicate window, the accepted-events bucket's TTL).
  idempotencyWindow: field.duration('IDEMPOTENCY_WINDOW', 'how long a repeated event id is recognised and not delivered again', '10m'),
  shutdownGrace: field.duration('SHUTDOWN_GRACE', 'how long work in progress may take to finish on SIGTERM', '10s'),
  ...grpcTlsFields(),
};

/** Transport security of the gRPC server; the production profile refuses plaintext unless a mesh encrypts. */
function grpcTlsFields() {
  return {
    tlsCertFile: field.string('GRPC_TLS_CERT_FILE', 'PEM certificate chain of the gRPC server; with GRPC_TLS_KEY_FILE turns TLS on (re-read when it changes)', ''),
    tlsKeyFile: field.string('GRPC_TLS_KEY_FILE', 'PEM private key of GRPC_TLS_CERT_FILE', ''),
    tlsClientCaFile: field.string('GRPC_TLS_CLIENT_CA_FILE', 'PEM CA bundle; when set, every client must present a certificate it signed (mutual TLS)', ''),
    tlsReloadInterval: field.duration('GRPC_TLS_RELOAD_INTERVAL', 'how often the TLS files are checked for a new version (cert-manager rotation)', '60s'),
    plaintextBehindMesh: field.boolean('GRPC_PLAINTEXT_BEHIND_MESH', 'production only: serve plaintext gRPC because a service mesh (Istio, Linkerd mTLS) encrypts between pods', false),
  };
}

/** The endpoint URL policy, read by the control plane (at creation) and the dispatcher (at delivery). */
export const urlPolicyFields = {
  allowHttp: field.boolean('ALLOW_HTTP_ENDPOINTS', 'accept and deliver to http:// endpoint URLs, not only https://', false),
  allowedHosts: field.list('ALLOWED_ENDPOINT_HOSTS', 'host names or CIDR ranges endpoints may use even though they are internal', []),
};

import { defineConfig, field } from '@webhooks/config';

export const portalConfig = defineConfig({
  profile: field.oneOf('PROFILE', 'local: development defaults; production: every secret must be configured', ['local', 'production'], 'local'),
  host: field.string('PORTAL_HOST', 'address the portal binds (0.0.0.0 in a container)', '127.0.0.1'),
  port: field.integer('PORTAL_HTTP_PORT', 'HTTP port of the portal: the page and its API (0 picks a free one)', 8080, { min: 0, max: 65535 }),
  opsPort: field.integer('PORTAL_OPS_PORT', 'HTTP operations port: /metrics, /healthz, /readyz (0 picks a free one)', 9465, { min: 0, max: 65535 }),
  subscriptionAddress: field.string('SUBSCRIPTION_ADDRESS', 'host:port of the subscription service', '127.0.0.1:50051'),
  apiToken: field.string('PORTAL_API_TOKEN', 'bearer token the portal presents to the subscription service; it acts for any workspace, so the portal scopes every call itself'),
  sessionKey: field.string('PORTAL_SESSION_KEY', 'at least 32 characters; verifies portal session tokens (the same key the subscription service signs with)'),
  operatorTokens: field.list('PORTAL_OPERATOR_TOKENS', 'tokens with which platform operators open the portal and pick any workspace, comma-separated (at least 16 characters each)', []),
  frameAncestors: field.list('PORTAL_FRAME_ANCESTORS', "origins allowed to embed the portal in an iframe (CSP frame-ancestors), e.g. https://app.example.com; 'self' alone when unset", ["'self'"]),
  publicDir: field.string('PORTAL_PUBLIC_DIR', 'the built front-end; the default is the one next to this program', ''),
  subscriptionTlsCaFile: field.string('SUBSCRIPTION_TLS_CA_FILE', 'PEM CA that signed the subscription service certificate; when set, the portal calls it over TLS', ''),
  subscriptionTlsCertFile: field.string('SUBSCRIPTION_TLS_CERT_FILE', "the portal's client certificate, when the subscription service requires mutual TLS", ''),
  subscriptionTlsKeyFile: field.string('SUBSCRIPTION_TLS_KEY_FILE', 'PEM private key of SUBSCRIPTION_TLS_CERT_FILE', ''),
  plaintextBehindMesh: field.boolean('GRPC_PLAINTEXT_BEHIND_MESH', 'a service mesh encrypts the traffic between pods: PROFILE=production then allows plaintext gRPC', false),
  subscriptionTlsServerName: field.string('SUBSCRIPTION_TLS_SERVER_NAME', "name to expect in the subscription service's certificate instead of the host of SUBSCRIPTION_ADDRESS", ''),
  headersTimeout: field.duration('PORTAL_HEADERS_TIMEOUT', "how long a client may take to send a request's headers before the connection is closed (slow-header attacks)", '10s'),
  requestTimeout: field.duration('PORTAL_REQUEST_TIMEOUT', 'how long a client may take to send a whole request, body included', '30s'),
  maxConnections: field.integer('PORTAL_MAX_CONNECTIONS', 'open connections the portal accepts at once; further ones are closed at once', 1000, { min: 1, max: 1_000_000 }),
  shutdownGrace: field.duration('SHUTDOWN_GRACE', 'how long requests in progress may take to finish on SIGTERM', '10s'),
});

export type PortalConfig = ReturnType<typeof portalConfig.parse>;

import { defineConfig, field, sharedFields, urlPolicyFields } from '@webhooks/config';

export const subscriptionConfig = defineConfig({
  ...sharedFields,
  opsPort: field.integer('SUBSCRIPTION_OPS_PORT', 'HTTP operations port: /metrics, /healthz, /readyz (0 picks a free one)', 9461, { min: 0, max: 65535 }),
  ...urlPolicyFields,
  port: field.integer('SUBSCRIPTION_GRPC_PORT', 'gRPC port of the subscription service (0 picks a free one)', 50051, { min: 0, max: 65535 }),
  databaseUrl: field.string('DATABASE_URL', 'PostgreSQL connection URL', 'postgres://postgres@127.0.0.1:5432/webhooks'),
  apiTokens: field.list('API_TOKENS', 'accepted bearer tokens: TOKEN or TOKEN:WS1|WS2, comma-separated'),
  secretKey: field.string('SECRET_ENCRYPTION_KEY', 'base64 of 32 bytes that encrypts signing secrets at rest'),
  maxWebhooksPerWorkspace: field.integer('MAX_WEBHOOKS_PER_WORKSPACE', 'webhooks one workspace may have', 20, { min: 1 }),
  secretRotationGrace: field.duration('SECRET_ROTATION_GRACE', 'how long the previous signing secret keeps signing after a rotation', '24h'),
  reconcileInterval: field.duration('ROUTES_RECONCILE_INTERVAL', 'how often the routing table is compared with PostgreSQL and repaired', '5m'),
  maxEventBytes: field.integer('MAX_EVENT_BYTES', 'largest delivered body of a test event, in bytes', 262_144, { min: 1024 }),
  logRetention: field.duration('LOG_RETENTION', 'deliveries, their attempts and bodies older than this are dropped, a whole day at a time; webhook activity too', '30d'),
  retentionInterval: field.duration('RETENTION_INTERVAL', 'how often old delivery log days are dropped and old webhook activity deleted', '1h'),
  retentionBatch: field.integer('RETENTION_BATCH', 'webhook activity records deleted per statement', 1_000, { min: 1 }),
  migrateOnStart: field.boolean('MIGRATE_ON_START', 'apply pending database migrations at start-up', true),
  portalSessionKey: field.string('PORTAL_SESSION_KEY', 'at least 32 characters; signs portal session links (the portal verifies them with the same key)'),
  portalUrl: field.string('PORTAL_URL', "the portal's address as browsers reach it; CreatePortalSession returns links to it", 'http://127.0.0.1:8080'),
  // The dispatchers decide trips with these; the control plane only reports the breaker's state against them.
  breakerThreshold: field.integer('BREAKER_THRESHOLD', 'failed attempts tolerated per workspace within the window (set as for the dispatcher)', 30, { min: 1 }),
  breakerWindow: field.duration('BREAKER_WINDOW', 'the window over which failed attempts are counted (set as for the dispatcher)', '30m'),
  // The log shows a retrying delivery's give-up time with it.
  giveUpAfter: field.duration('GIVE_UP_AFTER', 'no attempt starts later than this after the first one (set as for the dispatcher)', '3m'),
});

export type SubscriptionConfig = ReturnType<typeof subscriptionConfig.parse>;

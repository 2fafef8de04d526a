import { defineConfig, field, sharedFields } from '@webhooks/config';

export const ingestConfig = defineConfig({
  ...sharedFields,
  opsPort: field.integer('INGEST_OPS_PORT', 'HTTP operations port: /metrics, /healthz, /readyz (0 picks a free one)', 9462, { min: 0, max: 65535 }),
  port: field.integer('INGEST_GRPC_PORT', 'gRPC port of event-ingest (0 picks a free one)', 50052, { min: 0, max: 65535 }),
  routesSyncTimeout: field.duration('ROUTES_SYNC_TIMEOUT', 'how long a publish waits for the routing table mirror to catch up before it answers UNAVAILABLE', '5s'),
  apiTokens: field.list('API_TOKENS', 'accepted bearer tokens: TOKEN or TOKEN:WS1|WS2, comma-separated'),
  maxEventBytes: field.integer('MAX_EVENT_BYTES', 'largest delivered body of one event, in bytes', 262_144, { min: 1024 }),
  maxBatchEvents: field.integer('MAX_BATCH_EVENTS', 'most events in one PublishEvents call', 500, { min: 1 }),
});

export type IngestConfig = ReturnType<typeof ingestConfig.parse>;

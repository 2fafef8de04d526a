import { defineConfig, field, parseDuration, sharedFields, urlPolicyFields } from '@webhooks/config';

export const dispatcherConfig = defineConfig({
  ...sharedFields,
  opsPort: field.integer('DISPATCHER_OPS_PORT', 'HTTP operations port: /metrics, /healthz, /readyz (0 picks a free one)', 9463, { min: 0, max: 65535 }),
  ...urlPolicyFields,
  port: field.integer('DISPATCHER_HEALTH_PORT', 'gRPC health port of the dispatcher (0 picks a free one)', 50053, { min: 0, max: 65535 }),
  secretKey: field.string('SECRET_ENCRYPTION_KEY', 'base64 of 32 bytes that decrypts signing secrets (same key as the subscription service)'),
  attemptTimeout: field.duration('ATTEMPT_TIMEOUT', 'an attempt fails unless the whole 2xx response arrives within this time', '5s'),
  retryDelays: field.durations('RETRY_DELAYS', 'wait after the 1st, 2nd, 3rd failed attempt', '30s,60s,90s'),
  giveUpAfter: field.duration('GIVE_UP_AFTER', 'no attempt starts later than this after the first one; the event is dropped', '3m'),
  breakerThreshold: field.integer('BREAKER_THRESHOLD', 'failed attempts tolerated per workspace within the window; one more disables the failing webhooks', 30, { min: 1 }),
  breakerWindow: field.duration('BREAKER_WINDOW', 'the window over which failed attempts are counted', '30m'),
  connectionsPerOrigin: field.integer('DISPATCH_IDLE_CONNECTIONS_PER_ORIGIN', 'free connections one replica keeps to one endpoint origin for the next requests; connections in use are not capped (one per webhook at most)', 4096, { min: 1, max: 100_000 }),
  ackWait: field.duration('DELIVERY_ACK_WAIT', 'after this long without an ack the server hands a task out again to the shard owner that holds it; a shard taken over from a crashed replica gets its tasks back at once', '30s'),
  egressProxyUrl: field.custom(
    'EGRESS_PROXY_URL',
    'http://[user:password@]host:port of an HTTP CONNECT proxy every delivery and OAuth token request leaves through (static egress addresses); unset connects directly',
    (raw): URL | undefined => {
      const url = URL.parse(raw.trim());
      if (!url || url.protocol !== 'http:' || !url.hostname) throw new Error('is not an http://host:port URL of a CONNECT proxy');
      if (url.pathname !== '/' || url.search || url.hash) throw new Error('must be only http://[user:password@]host:port');
      return url;
    },
    () => undefined,
  ),
  leaseTtl: field.custom(
    'DISPATCH_LEASE_TTL',
    'how long a replica keeps its delivery shards without renewing them (it renews every third of it); a replica that died is replaced within this plus a third',
    (raw) => {
      const ms = parseDuration(raw);
      if (ms < 1_000) throw new Error(`${raw} is shorter than 1s`);
      return ms;
    },
    () => 15_000,
  ),
});

export type DispatcherConfig = ReturnType<typeof dispatcherConfig.parse>;

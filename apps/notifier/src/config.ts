import { defineConfig, field, sharedFields } from '@webhooks/config';

export const notifierConfig = defineConfig({
  ...sharedFields,
  opsPort: field.integer('NOTIFIER_OPS_PORT', 'HTTP operations port: /metrics, /healthz, /readyz (0 picks a free one)', 9464, { min: 0, max: 65535 }),
  port: field.integer('NOTIFIER_HEALTH_PORT', 'gRPC health port of the notifier (0 picks a free one)', 50054, { min: 0, max: 65535 }),
  subscriptionAddress: field.string('SUBSCRIPTION_ADDRESS', 'host:port of the subscription service, asked for notification addresses', '127.0.0.1:50051'),
  apiToken: field.string('NOTIFIER_API_TOKEN', 'bearer token the notifier presents to the subscription service'),
  subscriptionTlsCaFile: field.string('SUBSCRIPTION_TLS_CA_FILE', 'PEM CA that signed the subscription service certificate; when set, the notifier calls it over TLS', ''),
  subscriptionTlsCertFile: field.string('SUBSCRIPTION_TLS_CERT_FILE', "the notifier's client certificate, when the subscription service requires mutual TLS", ''),
  subscriptionTlsKeyFile: field.string('SUBSCRIPTION_TLS_KEY_FILE', 'PEM private key of SUBSCRIPTION_TLS_CERT_FILE', ''),
  subscriptionTlsServerName: field.string('SUBSCRIPTION_TLS_SERVER_NAME', "name to expect in the subscription service's certificate instead of the host of SUBSCRIPTION_ADDRESS", ''),
  smtpUrl: field.string('SMTP_URL', 'smtp:// or smtps:// URL with user and password if needed; empty writes .eml files to EMAIL_OUTBOX_DIR instead', ''),
  smtpRequireTls: field.boolean('SMTP_REQUIRE_TLS', 'refuse to send over smtp:// unless the server offers STARTTLS', false),
  mailFrom: field.string('MAIL_FROM', 'sender of the notices', 'Webhooks <webhooks@localhost>'),
  outboxDir: field.string('EMAIL_OUTBOX_DIR', 'where notices are written as .eml files when no SMTP_URL is set', '.local/outbox'),
  maxNoticeAge: field.duration('NOTICE_MAX_AGE', 'a trip whose notice could not be sent for this long is logged as an error and given up', '24h'),
  retryBase: field.duration('NOTICE_RETRY_BASE', 'first wait after a failed send; it doubles each time', '5s'),
  retryMax: field.duration('NOTICE_RETRY_MAX', 'longest wait between two tries of a send', '5m'),
  ackWait: field.duration('NOTICE_ACK_WAIT', 'how long NATS waits for a trip to be acked before handing it out again; a trip being sent is reported as in progress every third of it', '60s'),
  smtpConnectionTimeout: field.duration('SMTP_CONNECTION_TIMEOUT', 'longest wait for the TCP connection to the SMTP server', '10s'),
  smtpGreetingTimeout: field.duration('SMTP_GREETING_TIMEOUT', "longest wait for the SMTP server's greeting once connected", '10s'),
  smtpSocketTimeout: field.duration('SMTP_SOCKET_TIMEOUT', 'longest silence of the SMTP server during a send; with the two above and 10 s for the workspace lookup at most 5 minutes', '30s'),
});

export type NotifierConfig = ReturnType<typeof notifierConfig.parse>;

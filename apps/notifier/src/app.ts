// The notifier's composition root: configuration, NATS, the trip consumer, the mailer, health, shutdown.
import { notifierConfig } from './config.js';
import { withProfileDefaults } from '@webhooks/config';
import { clientSecurity, logReady, onShutdownSignal, Readiness, runService, serverSecurity, startGrpcServer } from '@webhooks/grpc-kit';
import { connectNats, ensureTopology, jetstream, topology } from '@webhooks/messaging';
import { createLogger, startOperationsServer, telemetry } from '@webhooks/telemetry';
import { createMailer } from './mailer.js';
import { consumeTripsForNotices, TripNotifier, workspaceDirectory } from './notifier.js';
import { sendBudget } from './send-budget.js';

const logger = createLogger('notifier');

async function main(): Promise<void> {
  const config = notifierConfig.parse(withProfileDefaults(process.env));
  // Decided before anything connects: production refuses plaintext gRPC (GRPC_TLS_*, GRPC_PLAINTEXT_BEHIND_MESH).
  const grpcSecurity = serverSecurity(config, logger);
  // Refuses SMTP timeouts that would let one notice hang for too long (NOTICE_ACK_WAIT, SMTP_*_TIMEOUT).
  const budget = sendBudget({ ackWaitMs: config.ackWait, connectionTimeoutMs: config.smtpConnectionTimeout, greetingTimeoutMs: config.smtpGreetingTimeout, socketTimeoutMs: config.smtpSocketTimeout });
  const subscriptionTransport = clientSecurity(
    { profile: config.profile, plaintextBehindMesh: config.plaintextBehindMesh, variablePrefix: 'SUBSCRIPTION_TLS', caFile: config.subscriptionTlsCaFile, certFile: config.subscriptionTlsCertFile, keyFile: config.subscriptionTlsKeyFile, serverName: config.subscriptionTlsServerName, reloadIntervalMs: config.tlsReloadInterval },
    logger,
  );
  const nc = await connectNats(config.natsUrl, 'notifier');
  const readiness = new Readiness(logger);
  readiness.watchNats(nc);
  const t = topology({ prefix: config.messagingPrefix, replicas: config.natsReplicas, idempotencyWindowMs: config.idempotencyWindow });
  const { jsm } = await ensureTopology(nc, t);
  const directory = workspaceDirectory(config.subscriptionAddress, config.apiToken, subscriptionTransport);
  const mailer = createMailer({ smtpUrl: config.smtpUrl, requireTls: config.smtpRequireTls, from: config.mailFrom, outboxDir: config.outboxDir, timeouts: { connectionMs: config.smtpConnectionTimeout, greetingMs: config.smtpGreetingTimeout, socketMs: config.smtpSocketTimeout } }, logger);
  const notifier = new TripNotifier(directory, mailer, { maxNoticeAgeMs: config.maxNoticeAge, retryBaseMs: config.retryBase, retryMaxMs: config.retryMax, keepAliveMs: budget.keepAliveMs }, logger);
  const trips = await consumeTripsForNotices(jetstream(nc), jsm, t, notifier, logger, { ackWaitMs: config.ackWait, onHealth: (ok, reason) => readiness.set('trip consumer', ok, reason) });

  const server = await startGrpcServer({ host: config.host, port: config.port, services: [], security: grpcSecurity });
  readiness.attach(server.health);
  const operations = await startOperationsServer({ host: config.host, port: config.opsPort, ready: () => readiness.ready(), notReadyReason: () => readiness.reason() });
  onShutdownSignal(logger, config.shutdownGrace + 5_000, async () => {
    server.health.setStatus('', 'NOT_SERVING');
    await trips.stop();
    mailer.close();
    directory.close();
    await server.shutdown(1_000);
    await nc.drain();
    await operations.close();
    await telemetry().shutdown();
  });
  logReady(logger, config, { opsPort: operations.port, healthPort: server.port, grpcPort: server.port, host: config.host, prefix: config.messagingPrefix, smtp: config.smtpUrl === '' ? `outbox ${config.outboxDir}` : 'smtp' });
}

runService(logger, main);

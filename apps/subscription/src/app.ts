// The subscription service's composition root: configuration, PostgreSQL, NATS, gRPC, shutdown.
import { lookup } from 'node:dns/promises';
import { subscriptionConfig } from './config.js';
import { withProfileDefaults } from '@webhooks/config';
import { DeliveryLogServiceService, SubscriptionServiceService } from '@webhooks/contracts';
import { portalSessionKey, SecretBox } from '@webhooks/domain';
import { logReady, onShutdownSignal, Readiness, runService, serverSecurity, startGrpcServer, streamHandlers, TokenAuthenticator, unaryHandlers } from '@webhooks/grpc-kit';
import { connectNats, ensureTopology, jetstream, JetStreamPublisher, topology } from '@webhooks/messaging';
import { createLogger, startOperationsServer, telemetry } from '@webhooks/telemetry';
import { ControlPlane } from './control-plane.js';
import { deliveryLogService, subscriptionService } from './grpc.js';
import { migrate, openOrm } from './persistence/orm.js';
import { RoutePublisher } from './routes.js';
import { consumeTrips, failureForgetter } from './trips.js';
import { consumeAttempts } from './delivery-log/attempt-log.js';
import { DeliveryLog } from './delivery-log/delivery-log.js';
import { dropOldDays } from './delivery-log/partitions.js';
import { breakerReader, portalLinks } from './portal.js';
import { deleteOldActivity, listActivity } from './activity/activity-log.js';
import { ActivityFeed } from './activity/feed.js';

const logger = createLogger('subscription');

async function main(): Promise<void> {
  const config = subscriptionConfig.parse(withProfileDefaults(process.env));
  // Decided before anything connects: production refuses plaintext gRPC (GRPC_TLS_*, GRPC_PLAINTEXT_BEHIND_MESH).
  const grpcSecurity = serverSecurity(config, logger);
  const secrets = SecretBox.fromBase64(config.secretKey);
  const auth = new TokenAuthenticator(config.apiTokens);
  const portalKey = portalSessionKey(config.portalSessionKey);

  const orm = await openOrm(config.databaseUrl, (message) => logger.debug({ component: 'orm' }, message));
  if (config.migrateOnStart) {
    const applied = await migrate(orm);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
  }

  const nc = await connectNats(config.natsUrl, 'subscription');
  const readiness = new Readiness(logger);
  readiness.watchNats(nc);
  const databaseTimer = setInterval(() => {
    orm.em.getConnection().execute('select 1').then(
      () => readiness.set('postgres', true),
      () => readiness.set('postgres', false, 'PostgreSQL is unreachable'),
    );
  }, 5_000);
  const t = topology({ prefix: config.messagingPrefix, replicas: config.natsReplicas, idempotencyWindowMs: config.idempotencyWindow });
  const { jsm, buckets } = await ensureTopology(nc, t);
  const routes = new RoutePublisher(orm, buckets.routes, t, logger);
  const controlPlane = new ControlPlane(orm, routes, secrets, {
    urlPolicy: { allowHttp: config.allowHttp, allowedHosts: config.allowedHosts, maxLength: 2048 },
    maxWebhooksPerWorkspace: config.maxWebhooksPerWorkspace,
    secretRotationGraceMs: config.secretRotationGrace,
    forgetFailures: failureForgetter(buckets.breaker, t),
    resolveHost: async (host) => (await lookup(host, { all: true })).map((answer) => answer.address),
  });
  const js = jetstream(nc);
  const trips = await consumeTrips(js, jsm, t, controlPlane, logger);
  const attempts = await consumeAttempts(js, jsm, t, orm, logger);
  const deliveryLog = new DeliveryLog(orm, new JetStreamPublisher(nc), t, config.maxEventBytes, config.giveUpAfter);
  const retention = () => {
    // The delivery log goes a day at a time (delivery-log/partitions.ts rule 4); the run also makes the next days.
    dropOldDays(orm, new Date(Date.now() - config.logRetention)).then(
      (days) => days.length > 0 && logger.info({ days }, 'delivery log days older than the retention dropped'),
      (error: unknown) => logger.error({ err: error }, 'dropping old delivery log days failed'),
    );
    deleteOldActivity(orm, new Date(Date.now() - config.logRetention), config.retentionBatch).then(
      (removed) => removed > 0 && logger.info({ removed }, 'old webhook activity deleted'),
      (error: unknown) => logger.error({ err: error }, 'deleting old webhook activity failed'),
    );
  };
  retention();
  const retentionTimer = setInterval(retention, config.retentionInterval);
  const feed = new ActivityFeed(orm, logger);
  await feed.start();
  const activity = {
    list: (workspaceId: string, filter: Parameters<typeof listActivity>[2], pageSize: number, pageToken: string) => listActivity(orm.em.fork(), workspaceId, filter, pageSize, pageToken),
    watch: feed.watch.bind(feed),
  };

  // Repair any drift a crash between a PostgreSQL commit and its routing-table write left behind.
  await controlPlane.reconcileRoutes();
  const reconcileTimer = setInterval(() => {
    controlPlane.reconcileRoutes().catch((error: unknown) => logger.error({ err: error }, 'routing table reconcile failed'));
  }, config.reconcileInterval);

  const unary = unaryHandlers(auth, logger);
  const server = await startGrpcServer({
    host: config.host,
    port: config.port,
    services: [
      {
        definition: SubscriptionServiceService,
        implementation: subscriptionService(controlPlane, unary, {
          link: portalLinks(portalKey, config.portalUrl),
          breaker: breakerReader(buckets.breaker, t, { threshold: config.breakerThreshold, windowMs: config.breakerWindow }),
        }, streamHandlers(auth, logger), activity),
      },
      { definition: DeliveryLogServiceService, implementation: deliveryLogService(deliveryLog, unary) },
    ],
    security: grpcSecurity,
  });
  readiness.attach(server.health);
  const operations = await startOperationsServer({ host: config.host, port: config.opsPort, ready: () => readiness.ready(), notReadyReason: () => readiness.reason() });

  onShutdownSignal(logger, config.shutdownGrace + 5_000, async () => {
    clearInterval(reconcileTimer);
    clearInterval(databaseTimer);
    // Watches end first (UNAVAILABLE: their clients resume elsewhere), so they do not hold the shutdown.
    feed.stop();
    await server.shutdown(config.shutdownGrace);
    clearInterval(retentionTimer);
    await trips.stop();
    await attempts.stop();
    await nc.drain();
    await operations.close();
    await telemetry().shutdown();
    await orm.close();
  });
  logReady(logger, config, { opsPort: operations.port, grpcPort: server.port, host: config.host, prefix: config.messagingPrefix });
}

runService(logger, main);

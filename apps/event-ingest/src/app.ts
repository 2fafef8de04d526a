// event-ingest's composition root: configuration, NATS, the routing-table mirror, gRPC, shutdown.
import { ingestConfig } from './config.js';
import { withProfileDefaults } from '@webhooks/config';
import { IngestServiceService, type IngestServiceServer } from '@webhooks/contracts';
import { logReady, onShutdownSignal, Readiness, runService, serverSecurity, startGrpcServer, TokenAuthenticator, unaryHandlers } from '@webhooks/grpc-kit';
import { connectNats, ensureTopology, JetStreamPublisher, RoutingTable, topology } from '@webhooks/messaging';
import { createLogger, startOperationsServer, telemetry } from '@webhooks/telemetry';
import { AcceptedEvents } from './accepted-events.js';
import { Ingestor } from './ingestor.js';

const logger = createLogger('event-ingest');

async function main(): Promise<void> {
  const config = ingestConfig.parse(withProfileDefaults(process.env));
  // Decided before anything connects: production refuses plaintext gRPC (GRPC_TLS_*, GRPC_PLAINTEXT_BEHIND_MESH).
  const grpcSecurity = serverSecurity(config, logger);
  const auth = new TokenAuthenticator(config.apiTokens);
  const nc = await connectNats(config.natsUrl, 'event-ingest');
  const readiness = new Readiness(logger);
  readiness.watchNats(nc);
  const t = topology({ prefix: config.messagingPrefix, replicas: config.natsReplicas, idempotencyWindowMs: config.idempotencyWindow });
  const { buckets } = await ensureTopology(nc, t);
  // Not ready while the mirror is stalled or its watch is being reopened: publishes would wait, then fail.
  const routes = await RoutingTable.open(buckets.routes, {
    syncTimeoutMs: config.routesSyncTimeout,
    logger,
    onState: (state) => readiness.set('routing-table', state.healthy, state.healthy ? undefined : state.reason),
  });
  const ingestor = new Ingestor(new JetStreamPublisher(nc), routes, new AcceptedEvents(buckets.accepted, t), t, config, logger);

  const unary = unaryHandlers(auth, logger);
  const ingest: IngestServiceServer = {
    publishEvent: unary('PublishEvent', async (request, { caller }) => {
      const [result] = await ingestor.publish([request.event], caller, false);
      return { result };
    }),
    publishEvents: unary('PublishEvents', async (request, { caller }) => ({ results: await ingestor.publish(request.events, caller, true) })),
  };
  const server = await startGrpcServer({
    host: config.host,
    port: config.port,
    services: [{ definition: IngestServiceService, implementation: ingest }],
    security: grpcSecurity,
    // Room for a batch of 64 of the largest events; a larger request is refused by gRPC itself with
    // RESOURCE_EXHAUSTED before any of it is read.
    maxReceiveBytes: Math.max(4 * 1024 * 1024, config.maxEventBytes * 2 * Math.min(config.maxBatchEvents, 64)),
  });
  readiness.attach(server.health);
  const operations = await startOperationsServer({ host: config.host, port: config.opsPort, ready: () => readiness.ready(), notReadyReason: () => readiness.reason() });

  onShutdownSignal(logger, config.shutdownGrace + 5_000, async () => {
    await server.shutdown(config.shutdownGrace);
    routes.stop();
    await nc.drain();
    await operations.close();
    await telemetry().shutdown();
  });
  logReady(logger, config, { opsPort: operations.port, grpcPort: server.port, host: config.host, prefix: config.messagingPrefix });
}

runService(logger, main);

// The dispatcher's composition root: configuration, NATS, the routing-table mirror, the shard leases this
// replica holds and the consumers of their active webhooks, the HTTP client, the health server, shutdown.
import { dispatcherConfig } from './config.js';
import { withProfileDefaults } from '@webhooks/config';
import { SecretBox } from '@webhooks/domain';
import { logReady, onShutdownSignal, Readiness, runService, serverSecurity, startGrpcServer } from '@webhooks/grpc-kit';
import { connectNats, deliverShards, ensureDispatchersBucket, ensureTopology, jetstream, jetstreamManager, JetStreamPublisher, RoutingTable, streamNames, topology, type RouteChange } from '@webhooks/messaging';
import { createLogger, startOperationsServer, telemetry } from '@webhooks/telemetry';
import { DeliveryConsumers, shardRequestTimeoutMs } from './consumers.js';
import { newReplicaId, ShardOwnership } from './ownership.js';
import { Breaker, followTrips, Suspensions } from './breaker.js';
import { Deliverer } from './delivery.js';
import { Dispatch } from './dispatch.js';
import { RecordBatches } from './record-batches.js';
import { BreakerQueue } from './breaker-queue.js';
import { attemptBudget, leaseTrustMs } from './time-budget.js';
import { HttpSender } from './http-sender.js';
import { dispatcherMetrics } from './metrics.js';

const logger = createLogger('dispatcher');

async function main(): Promise<void> {
  const config = dispatcherConfig.parse(withProfileDefaults(process.env));
  // Refuses (ConfigError) an ack wait an attempt and its record cannot fit in.
  const budget = attemptBudget(config.ackWait, config.attemptTimeout);
  // Refuses (ConfigError) a lease time a request cannot end inside (time-budget.ts).
  leaseTrustMs(config.leaseTtl, config.attemptTimeout);
  // Decided before anything connects: production refuses plaintext gRPC (GRPC_TLS_*, GRPC_PLAINTEXT_BEHIND_MESH).
  const grpcSecurity = serverSecurity(config, logger);
  const urlPolicy = { allowHttp: config.allowHttp, allowedHosts: config.allowedHosts, maxLength: 2048 };
  const retryPolicy = { delaysMs: config.retryDelays, giveUpAfterMs: config.giveUpAfter };

  const nc = await connectNats(config.natsUrl, 'dispatcher');
  const readiness = new Readiness(logger);
  readiness.watchNats(nc);
  const t = topology({ prefix: config.messagingPrefix, replicas: config.natsReplicas, idempotencyWindowMs: config.idempotencyWindow });
  const { jsm, buckets } = await ensureTopology(nc, t);
  const js = jetstream(nc);
  // The shard consumers and parks give up on an unanswered request sooner (shard-consumer.ts).
  const shardJsm = await jetstreamManager(nc, { timeout: shardRequestTimeoutMs, checkAPI: false });
  const publisher = new JetStreamPublisher(nc, budget.recordPublishTimeoutMs);
  // Deliveries and OAuth token requests leave through EGRESS_PROXY_URL when it is set (egress.ts).
  const sender = new HttpSender(urlPolicy, config.attemptTimeout, { proxyUrl: config.egressProxyUrl, connectionsPerOrigin: config.connectionsPerOrigin });
  const deliverer = new Deliverer(sender, SecretBox.fromBase64(config.secretKey), urlPolicy, retryPolicy, config.attemptTimeout);

  // The consumers follow the routing table, and the dispatch reads it: wire them through a forwarder.
  const followers: { consumers?: DeliveryConsumers } = {};
  // Not ready while the mirror's watch is down or being reopened: route changes would reach this replica late.
  const routes = await RoutingTable.open(buckets.routes, {
    onChange: (change: RouteChange) => followers.consumers?.onRouteChange(change),
    logger,
    onState: (state) => readiness.set('routing-table', state.healthy, state.healthy ? undefined : state.reason),
  });
  const suspensions = new Suspensions();
  const breaker = new Breaker(buckets.breaker, publisher, t, routes, { threshold: config.breakerThreshold, windowMs: config.breakerWindow }, logger);
  const breakerQueue = new BreakerQueue(breaker, logger);
  // A success unacked here comes back after ack_wait; a recalled one at once: remembered twice that and a lease (record-batches.ts rule 4).
  const recallWindowMs = 2 * (config.ackWait + config.leaseTtl);
  const batches = new RecordBatches(publisher, t);
  const dispatch = new Dispatch(publisher, jsm, t, routes, deliverer, retryPolicy, breakerQueue, suspensions, logger, budget.recordPublishTimeoutMs, batches, js, recallWindowMs, (shard) =>
    followers.consumers ? followers.consumers.mayAct(shard) : Promise.resolve(false),
    budget.freshForMs,
  );
  // Each webhook is consumed by the one replica that holds its shard's lease (ownership.ts).
  const leases: { ownership?: ShardOwnership } = {};
  const consumers = new DeliveryConsumers(
    js,
    shardJsm,
    publisher,
    t,
    routes,
    config.ackWait,
    dispatch.handle,
    suspensions,
    logger,
    (down) => readiness.set('delivery-loops', down === 0, `${down} delivery loop(s) failed and are restarting`),
    (shard) => leases.ownership?.owns(shard) ?? false,
    dispatch.recall,
  );
  followers.consumers = consumers;
  const trips = followTrips(nc, t, routes, suspensions, (route) => consumers.refresh(route.workspaceId, route.webhookId), logger);
  const ownership = new ShardOwnership(
    await ensureDispatchersBucket(nc, t, config.leaseTtl),
    t,
    newReplicaId(),
    { leaseTtlMs: config.leaseTtl, shardCount: deliverShards, attemptTimeoutMs: config.attemptTimeout },
    { acquired: (shards) => consumers.acquire(shards), released: (shards) => consumers.release(shards) },
    logger,
  );
  leases.ownership = ownership;
  await ownership.start();
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'reconnect') {
        logger.info(consumers.counts(), 'NATS connection back; restarting the delivery loops');
        consumers.resume();
      }
    }
  })();

  // Messages held per stream, read every 15 s so scrapes cost NATS nothing.
  const held = new Map<string, number>();
  const refreshHeld = () =>
    Promise.all(streamNames(t).map(async (name) => held.set(name, (await jsm.streams.info(name)).state.messages))).catch(() => undefined);
  void refreshHeld();
  const heldTimer = setInterval(refreshHeld, 15_000);
  dispatcherMetrics.streamMessages.addCallback((result) => {
    for (const [stream, messages] of held) result.observe(messages, { stream });
  });

  const server = await startGrpcServer({ host: config.host, port: config.port, services: [], security: grpcSecurity });
  readiness.attach(server.health);
  const operations = await startOperationsServer({ host: config.host, port: config.opsPort, ready: () => readiness.ready(), notReadyReason: () => readiness.reason() });

  onShutdownSignal(logger, config.shutdownGrace + 5_000, async () => {
    server.health.setStatus('', 'NOT_SERVING');
    clearInterval(heldTimer);
    trips.stop();
    // Hands every shard over (waiting for the attempts in flight), so the others take over at once.
    await ownership.stop();
    dispatch.stop();
    await consumers.stop();
    // Acks still waiting for a record batch to travel with (deferred-acks.ts).
    batches.acks.flush();
    await breakerQueue.idle();
    routes.stop();
    await sender.close();
    await server.shutdown(1_000);
    await nc.drain();
    await operations.close();
    await telemetry().shutdown();
  });
  // The proxy's address only: its user and password stay out of the logs.
  logReady(logger, config, { egressProxy: config.egressProxyUrl ? config.egressProxyUrl.host : 'none', replica: ownership.replicaId, opsPort: operations.port, healthPort: server.port, grpcPort: server.port, host: config.host, prefix: config.messagingPrefix });
}

runService(logger, main);

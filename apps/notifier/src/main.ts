// The notifier's composition root. It connects to NATS and serves health; consuming breaker trips and
// sending the disable notice by email arrive with the breaker.
import { notifierConfig } from './config.js';
import { logReady, onShutdownSignal, runService, startGrpcServer } from '@webhooks/grpc-kit';
import { connectNats, ensureTopology, topology } from '@webhooks/messaging';
import { createLogger } from '@webhooks/telemetry';

const logger = createLogger('notifier');

async function main(): Promise<void> {
  const config = notifierConfig.parse(process.env);
  const nc = await connectNats(config.natsUrl, 'notifier');
  await ensureTopology(nc, topology({ prefix: config.messagingPrefix, replicas: config.natsReplicas }));
  const server = await startGrpcServer({ host: config.host, port: config.port, services: [] });
  server.health.setStatus('', 'SERVING');
  onShutdownSignal(logger, config.shutdownGrace + 5_000, async () => {
    await server.shutdown(1_000);
    await nc.drain();
  });
  logReady(logger, config, { healthPort: server.port, grpcPort: server.port, host: config.host, prefix: config.messagingPrefix });
}

runService(logger, main);

// The portal's composition root: configuration, the gRPC client, the HTTP server, operations, shutdown.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebhooksClient } from '@webhooks/client';
import { ConfigError, withProfileDefaults } from '@webhooks/config';
import { portalSessionKey } from '@webhooks/domain';
import { onShutdownSignal, runService } from '@webhooks/grpc-kit';
import { createLogger, startOperationsServer, telemetry } from '@webhooks/telemetry';
import { portalConfig } from './config.js';
import { startPortalServer } from './server.js';
import { PortalAuthenticator } from './session.js';

const logger = createLogger('portal');

async function main(): Promise<void> {
  const config = portalConfig.parse(withProfileDefaults(process.env));
  const auth = new PortalAuthenticator(portalSessionKey(config.sessionKey), config.operatorTokens);
  const publicDir = config.publicDir || join(dirname(fileURLToPath(import.meta.url)), 'public');
  // Like the other services: production sends its token over plaintext only when a mesh encrypts.
  if (config.profile === 'production' && !config.subscriptionTlsCaFile && !config.plaintextBehindMesh) {
    throw new ConfigError([
      "SUBSCRIPTION_TLS_CA_FILE: PROFILE=production refuses to send the portal's token over plaintext gRPC: set it to the CA that signed the subscription service's certificate, or GRPC_PLAINTEXT_BEHIND_MESH=true when a service mesh encrypts the traffic between pods",
    ]);
  }
  const read = (file: string) => (file ? readFileSync(file) : undefined);
  const tls = config.subscriptionTlsCaFile || config.subscriptionTlsCertFile
    ? { ca: read(config.subscriptionTlsCaFile), cert: read(config.subscriptionTlsCertFile), key: read(config.subscriptionTlsKeyFile), serverName: config.subscriptionTlsServerName || undefined }
    : undefined;
  // The portal reaches only the subscription service (webhooks and the delivery log); ingest is never called.
  const client = new WebhooksClient({ subscriptionAddress: config.subscriptionAddress, ingestAddress: config.subscriptionAddress, token: config.apiToken, tls });
  const server = await startPortalServer({
    host: config.host, port: config.port, publicDir, frameAncestors: config.frameAncestors, client, auth, logger,
    limits: { headersTimeoutMs: config.headersTimeout, requestTimeoutMs: config.requestTimeout, maxConnections: config.maxConnections },
  });
  // Ready as soon as it serves: a subscription service that is away is reported per request (503).
  const operations = await startOperationsServer({ host: config.host, port: config.opsPort, ready: () => true });

  onShutdownSignal(logger, config.shutdownGrace + 5_000, async () => {
    await server.close();
    client.close();
    await operations.close();
    await telemetry().shutdown();
  });
  logger.info({ httpPort: server.port, opsPort: operations.port, host: config.host, url: `http://${config.host}:${server.port}/` }, 'ready');
}

runService(logger, main);

// Transport security against real TLS servers on 127.0.0.1 with certificates from a CA made in the test:
// the production rule, which clients get in (trusted CA, client certificate) and which do not, and a
// certificate rotated on disk being served without a restart.
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { ConfigError } from '@webhooks/config';
import { createLogger } from '@webhooks/telemetry';
import { createTestCertificateAuthority, type TestCertificateAuthority } from '@webhooks/testing';
import { startGrpcServer, type RunningGrpcServer } from './server.js';
import { clientSecurity, productionPlaintextProblem, serverSecurity, type ServerSecuritySettings } from './tls.js';

const logger = createLogger('tls-test', 'silent');
const plain: ServerSecuritySettings = { profile: 'local', tlsCertFile: '', tlsKeyFile: '', tlsClientCaFile: '', tlsReloadInterval: 0, plaintextBehindMesh: false };

/** grpc.health.v1.Health/Check for service "" (an empty request); resolves, or rejects with the ServiceError. */
function healthCheck(address: string, creds: ChannelCredentials, options: Record<string, string> = {}): Promise<void> {
  const client = new Client(address, creds, options);
  return new Promise<void>((resolve, reject) =>
    client.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), { deadline: new Date(Date.now() + 5_000) }, (error: ServiceError | null) =>
      error ? reject(error) : resolve(),
    ),
  ).finally(() => client.close());
}

const problemsOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.problems.join('\n');
  }
  assert.fail('expected a ConfigError');
};

describe('the production rule', () => {
  it('serves plaintext in the local profile', () => {
    assert.deepEqual(serverSecurity(plain, logger), { kind: 'plaintext', reason: 'local profile' });
  });

  it('refuses plaintext in production, naming the variables that fix it', () => {
    const problems = problemsOf(() => serverSecurity({ ...plain, profile: 'production' }, logger));
    assert.equal(problems, productionPlaintextProblem);
    for (const variable of ['GRPC_TLS_CERT_FILE', 'GRPC_TLS_KEY_FILE', 'GRPC_PLAINTEXT_BEHIND_MESH']) assert.match(problems, new RegExp(variable));
  });

  it('serves plaintext in production when a mesh is said to encrypt', () => {
    assert.deepEqual(serverSecurity({ ...plain, profile: 'production', plaintextBehindMesh: true }, logger), { kind: 'plaintext', reason: 'service mesh' });
  });

  it("refuses a client's plaintext in production unless a mesh encrypts", () => {
    const settings = { profile: 'production', plaintextBehindMesh: false, variablePrefix: 'SUBSCRIPTION_TLS', caFile: '', certFile: '', keyFile: '', serverName: '', reloadIntervalMs: 0 };
    assert.match(problemsOf(() => clientSecurity(settings, logger)), /SUBSCRIPTION_TLS_CA_FILE: PROFILE=production refuses/);
    assert.equal(clientSecurity({ ...settings, plaintextBehindMesh: true }, logger).description, 'plaintext');
    assert.equal(clientSecurity({ ...settings, profile: 'local' }, logger).description, 'plaintext');
  });

  it('refuses half a configuration', () => {
    assert.match(problemsOf(() => serverSecurity({ ...plain, tlsCertFile: '/x.pem' }, logger)), /GRPC_TLS_KEY_FILE: is required/);
    assert.match(problemsOf(() => serverSecurity({ ...plain, tlsClientCaFile: '/ca.pem' }, logger)), /GRPC_TLS_CLIENT_CA_FILE: mutual TLS needs TLS/);
  });
});

describe('TLS servers', () => {
  let ca: TestCertificateAuthority;
  let otherCa: TestCertificateAuthority;
  const servers: RunningGrpcServer[] = [];

  before(() => {
    ca = createTestCertificateAuthority();
    otherCa = createTestCertificateAuthority('another CA');
  });

  after(async () => {
    for (const server of servers) await server.shutdown(100);
    ca.remove();
    otherCa.remove();
  });

  const start = async (settings: Partial<ServerSecuritySettings>) => {
    const server = await startGrpcServer({ host: '127.0.0.1', port: 0, services: [], security: serverSecurity({ ...plain, profile: 'production', ...settings }, logger) });
    server.health.setStatus('', 'SERVING');
    servers.push(server);
    return { server, address: `127.0.0.1:${server.port}` };
  };

  it('names the variable of a file that cannot be used', () => {
    const server = ca.issueServer('unreadable');
    assert.match(problemsOf(() => serverSecurity({ ...plain, tlsCertFile: '/nonexistent/cert.pem', tlsKeyFile: server.keyFile }, logger)), /GRPC_TLS_CERT_FILE: cannot read "\/nonexistent\/cert.pem": ENOENT/);
    const other = ca.issueServer('other');
    assert.match(problemsOf(() => serverSecurity({ ...plain, tlsCertFile: server.certFile, tlsKeyFile: other.keyFile }, logger)), /GRPC_TLS_KEY_FILE: the key .* does not belong to the certificate in GRPC_TLS_CERT_FILE/);
    assert.match(problemsOf(() => serverSecurity({ ...plain, tlsCertFile: server.keyFile, tlsKeyFile: server.keyFile }, logger)), /GRPC_TLS_CERT_FILE: .* is not a PEM certificate/);
  });

  it('answers a client that trusts its CA, and refuses plaintext and clients that do not', async () => {
    const cert = ca.issueServer('server-tls');
    const { address } = await start({ tlsCertFile: cert.certFile, tlsKeyFile: cert.keyFile });
    await healthCheck(address, credentials.createSsl(ca.ca));
    await assert.rejects(healthCheck(address, credentials.createInsecure()), (e: ServiceError) => e.code === 14 /* UNAVAILABLE */);
    await assert.rejects(healthCheck(address, credentials.createSsl(otherCa.ca)), (e: ServiceError) => e.code === 14);
  });

  it('checks the name in the certificate, which an override can change', async () => {
    const cert = ca.issueServer('server-named', ['subscription.webhooks.svc'], []);
    const { address } = await start({ tlsCertFile: cert.certFile, tlsKeyFile: cert.keyFile });
    await assert.rejects(healthCheck(address, credentials.createSsl(ca.ca)), (e: ServiceError) => e.code === 14);
    await healthCheck(address, credentials.createSsl(ca.ca), { 'grpc.ssl_target_name_override': 'subscription.webhooks.svc' });
  });

  it('with a client CA, refuses a client without a certificate and answers one with a certificate it signed', async () => {
    const cert = ca.issueServer('server-mtls');
    const client = ca.issueClient('core-product');
    const stranger = otherCa.issueClient('stranger');
    const { address } = await start({ tlsCertFile: cert.certFile, tlsKeyFile: cert.keyFile, tlsClientCaFile: ca.caFile });
    await assert.rejects(healthCheck(address, credentials.createSsl(ca.ca)), (e: ServiceError) => e.code === 14);
    await assert.rejects(healthCheck(address, credentials.createSsl(ca.ca, stranger.key, stranger.cert)), (e: ServiceError) => e.code === 14);
    await healthCheck(address, credentials.createSsl(ca.ca, client.key, client.cert));
  });

  it("serves a certificate rotated on disk without a restart, and keeps the old one while the new files don't match", async () => {
    const first = ca.issueServer('rotating');
    const security = serverSecurity({ ...plain, profile: 'production', tlsCertFile: first.certFile, tlsKeyFile: first.keyFile }, logger);
    const server = await startGrpcServer({ host: '127.0.0.1', port: 0, services: [], security });
    servers.push(server);
    const address = `127.0.0.1:${server.port}`;
    await healthCheck(address, credentials.createSsl(ca.ca));
    assert.equal(security.kind, 'tls');
    if (security.kind !== 'tls') return;

    // Half-way through a rotation: the new certificate is there, its key is not yet.
    const next = otherCa.issueServer('rotated');
    copyFileSync(next.certFile, first.certFile);
    assert.equal(await security.certificates.reload(), false);
    await healthCheck(address, credentials.createSsl(ca.ca));

    copyFileSync(next.keyFile, first.keyFile);
    assert.equal(await security.certificates.reload(), true);
    await healthCheck(address, credentials.createSsl(otherCa.ca));
    await assert.rejects(healthCheck(address, credentials.createSsl(ca.ca)), (e: ServiceError) => e.code === 14);
  });
});

// Transport security of the services' gRPC: TLS from PEM files that are re-read when they change
// (cert-manager rewrites them in place), optional mutual TLS, and the production rule that bearer tokens
// never travel in plaintext.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { credentials, experimental, ServerCredentials, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { ConfigError } from '@webhooks/config';
import type { Logger } from '@webhooks/telemetry';

type CertificateProvider = experimental.CertificateProvider;
type CaCertificateUpdateListener = experimental.CaCertificateUpdateListener;
type IdentityCertificateUpdateListener = experimental.IdentityCertificateUpdateListener;

/** A PEM file and the variable that named it, so that every problem says which setting to fix. */
export interface PemFile {
  readonly path: string;
  readonly variable: string;
}

export interface PemFiles {
  readonly cert?: PemFile;
  readonly key?: PemFile;
  readonly ca?: PemFile;
}

interface PemMaterial {
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly ca?: Buffer;
}

function problem(file: PemFile, text: string): never {
  throw new ConfigError([`${file.variable}: ${text}`]);
}

/** Checks that the files hold what they should (a certificate, its key, a CA); throws ConfigError naming the variable. */
function checkMaterial(files: PemFiles, material: PemMaterial): void {
  let certificate: X509Certificate | undefined;
  if (files.cert && material.cert) {
    try {
      certificate = new X509Certificate(material.cert);
    } catch (error) {
      problem(files.cert, `"${files.cert.path}" is not a PEM certificate (${(error as Error).message})`);
    }
  }
  if (files.key && material.key) {
    let key;
    try {
      key = createPrivateKey(material.key);
    } catch (error) {
      problem(files.key, `"${files.key.path}" is not a PEM private key (${(error as Error).message})`);
    }
    if (certificate && files.cert && !certificate.checkPrivateKey(key)) {
      problem(files.key, `the key in "${files.key.path}" does not belong to the certificate in ${files.cert.variable} ("${files.cert.path}")`);
    }
  }
  if (files.ca && material.ca) {
    try {
      new X509Certificate(material.ca);
    } catch (error) {
      problem(files.ca, `"${files.ca.path}" is not a PEM CA certificate (${(error as Error).message})`);
    }
  }
}

function readNow(file: PemFile | undefined): Buffer | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file.path);
  } catch (error) {
    problem(file, `cannot read "${file.path}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

const same = (a: Buffer | undefined, b: Buffer | undefined) => (a === undefined ? b === undefined : b !== undefined && a.equals(b));

/**
 * grpc-js's certificate provider over PEM files: read (and checked) once at construction, so a bad file
 * stops the start-up with its variable named; then, while a server or channel uses it, read again every
 * `intervalMs` and handed to grpc-js when the content changed. A new version that does not check out (a
 * key that does not match its certificate, read half-way through a rotation) is logged and the previous
 * one kept, so a rotation never leaves the server without certificates. (grpc-js's own
 * FileWatcherCertificateProvider would drop every connection until the next read in that case.)
 */
export class ReloadingPemFiles implements CertificateProvider {
  private material: PemMaterial;
  private timer: NodeJS.Timeout | undefined;
  private reading = false;
  private readonly caListeners = new Set<CaCertificateUpdateListener>();
  private readonly identityListeners = new Set<IdentityCertificateUpdateListener>();

  constructor(
    readonly files: PemFiles,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {
    if (!files.cert !== !files.key) throw new ConfigError([`${(files.cert ?? files.key)!.variable}: set it together with ${files.cert ? 'the key file' : 'the certificate file'}`]);
    this.material = { cert: readNow(files.cert), key: readNow(files.key), ca: readNow(files.ca) };
    checkMaterial(files, this.material);
  }

  addCaCertificateListener(listener: CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    this.watch();
    // grpc-js registers its own watcher only after this returns: the first update must come later.
    process.nextTick(() => listener(this.caUpdate()));
  }

  removeCaCertificateListener(listener: CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
    this.unwatchWhenUnused();
  }

  addIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    this.watch();
    process.nextTick(() => listener(this.identityUpdate()));
  }

  removeIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(listener);
    this.unwatchWhenUnused();
  }

  /** Reads the files again and passes a changed, valid version on; resolves to whether it changed. */
  async reload(): Promise<boolean> {
    if (this.reading) return false;
    this.reading = true;
    try {
      const read = (file: PemFile | undefined) => (file ? readFile(file.path) : Promise.resolve(undefined));
      const [cert, key, ca] = await Promise.all([read(this.files.cert), read(this.files.key), read(this.files.ca)]);
      const changedIdentity = !same(cert, this.material.cert) || !same(key, this.material.key);
      const changedCa = !same(ca, this.material.ca);
      if (!changedIdentity && !changedCa) return false;
      checkMaterial(this.files, { cert, key, ca });
      this.material = { cert, key, ca };
      if (changedIdentity) for (const listener of this.identityListeners) listener(this.identityUpdate());
      if (changedCa) for (const listener of this.caListeners) listener(this.caUpdate());
      this.logger.info({ files: Object.values(this.files).map((f) => f.variable) }, 'TLS certificates reloaded');
      return true;
    } catch (error) {
      const message = error instanceof ConfigError ? error.problems.join('; ') : (error as Error).message;
      this.logger.warn({ reason: message }, 'TLS files changed but could not be used; keeping the previous certificates');
      return false;
    } finally {
      this.reading = false;
    }
  }

  private caUpdate() {
    return this.material.ca ? { caCertificate: this.material.ca } : null;
  }

  private identityUpdate() {
    return this.material.cert && this.material.key ? { certificate: this.material.cert, privateKey: this.material.key } : null;
  }

  private watch(): void {
    if (this.timer || this.intervalMs <= 0) return;
    this.timer = setInterval(() => void this.reload(), this.intervalMs);
    this.timer.unref();
  }

  private unwatchWhenUnused(): void {
    if (this.caListeners.size > 0 || this.identityListeners.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** How a gRPC server is reached: TLS (optionally requiring client certificates), or plaintext and why that is allowed. */
export type ServerSecurity =
  | { readonly kind: 'tls'; readonly certificates: ReloadingPemFiles; readonly clientCertificateRequired: boolean }
  | { readonly kind: 'plaintext'; readonly reason: 'local profile' | 'service mesh' };

/** The shared settings (libs/config sharedFields) this needs. */
export interface ServerSecuritySettings {
  readonly profile: string;
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
  readonly tlsClientCaFile: string;
  readonly tlsReloadInterval: number;
  readonly plaintextBehindMesh: boolean;
}

/** Said by every refusal to run plaintext in production, so the fix is in the message. */
export const productionPlaintextProblem =
  'PROFILE=production refuses plaintext gRPC, since bearer tokens would travel in the clear: set GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE ' +
  '(and GRPC_TLS_CLIENT_CA_FILE to require client certificates), or GRPC_PLAINTEXT_BEHIND_MESH=true when a service mesh (Istio, Linkerd) encrypts the traffic between pods';

/**
 * Decides the server's transport from configuration, once at start-up: TLS when a certificate and key are
 * configured (their files are read and checked now), plaintext in the local profile, and in production
 * plaintext only when GRPC_PLAINTEXT_BEHIND_MESH says a mesh encrypts. Throws ConfigError otherwise.
 */
export function serverSecurity(settings: ServerSecuritySettings, logger: Logger): ServerSecurity {
  const cert = settings.tlsCertFile.trim();
  const key = settings.tlsKeyFile.trim();
  const clientCa = settings.tlsClientCaFile.trim();
  const problems: string[] = [];
  if (cert && !key) problems.push('GRPC_TLS_KEY_FILE: is required when GRPC_TLS_CERT_FILE is set');
  if (key && !cert) problems.push('GRPC_TLS_CERT_FILE: is required when GRPC_TLS_KEY_FILE is set');
  if (clientCa && !(cert && key)) problems.push('GRPC_TLS_CLIENT_CA_FILE: mutual TLS needs TLS: set GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE too');
  if (problems.length > 0) throw new ConfigError(problems);
  if (cert && key) {
    const certificates = new ReloadingPemFiles(
      {
        cert: { path: cert, variable: 'GRPC_TLS_CERT_FILE' },
        key: { path: key, variable: 'GRPC_TLS_KEY_FILE' },
        ...(clientCa ? { ca: { path: clientCa, variable: 'GRPC_TLS_CLIENT_CA_FILE' } } : {}),
      },
      settings.tlsReloadInterval,
      logger,
    );
    return announce({ kind: 'tls', certificates, clientCertificateRequired: clientCa !== '' }, logger);
  }
  if (settings.profile !== 'production') return announce({ kind: 'plaintext', reason: 'local profile' }, logger);
  if (settings.plaintextBehindMesh) return announce({ kind: 'plaintext', reason: 'service mesh' }, logger);
  throw new ConfigError([productionPlaintextProblem]);
}

function announce(security: ServerSecurity, logger: Logger): ServerSecurity {
  logger.info({ transport: describeSecurity(security) }, 'gRPC transport');
  return security;
}

/** What the "ready" line says about the transport (tests and operators read it). */
export function describeSecurity(security: ServerSecurity): string {
  if (security.kind === 'plaintext') return `plaintext (${security.reason})`;
  return security.clientCertificateRequired ? 'mutual TLS' : 'TLS';
}

export function serverCredentials(security: ServerSecurity): ServerCredentials {
  if (security.kind === 'plaintext') return ServerCredentials.createInsecure();
  // grpc-js names this function's parameters (ca, identity) but passes them on as (identity, ca): the
  // first argument is the server's own certificate, the second the client CA (null: no client certificates).
  return experimental.createCertificateProviderServerCredentials(
    security.certificates,
    security.clientCertificateRequired ? security.certificates : null,
    security.clientCertificateRequired,
  );
}

/** A service's client of another service: the CA to trust, its own certificate for mutual TLS, as configured. */
export interface ClientSecuritySettings {
  readonly profile: string;
  readonly plaintextBehindMesh: boolean;
  /** Prefix of the variables, e.g. SUBSCRIPTION_TLS: its _CA_FILE, _CERT_FILE, _KEY_FILE and _SERVER_NAME. */
  readonly variablePrefix: string;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The name to expect in the server's certificate instead of the address's host. */
  readonly serverName: string;
  readonly reloadIntervalMs: number;
}

export interface ClientTransport {
  readonly credentials: ChannelCredentials;
  readonly options: ChannelOptions;
  /** "plaintext", "TLS" or "mutual TLS", for the logs. */
  readonly description: string;
}

/**
 * Channel credentials for a service's own client (the notifier's to subscription), decided once at
 * start-up like the server's: TLS when a CA file is configured (the files are re-read like the
 * server's), plaintext in the local profile, and in production plaintext only behind a mesh.
 */
export function clientSecurity(settings: ClientSecuritySettings, logger: Logger): ClientTransport {
  const v = settings.variablePrefix;
  const [ca, cert, key] = [settings.caFile.trim(), settings.certFile.trim(), settings.keyFile.trim()];
  const problems: string[] = [];
  if ((cert || key) && !ca) problems.push(`${v}_CA_FILE: is required when ${v}_CERT_FILE or ${v}_KEY_FILE is set (the CA that signed the server's certificate)`);
  if (cert && !key) problems.push(`${v}_KEY_FILE: is required when ${v}_CERT_FILE is set`);
  if (key && !cert) problems.push(`${v}_CERT_FILE: is required when ${v}_KEY_FILE is set`);
  if (problems.length > 0) throw new ConfigError(problems);
  let transport: ClientTransport;
  if (ca) {
    const trust = new ReloadingPemFiles({ ca: { path: ca, variable: `${v}_CA_FILE` } }, settings.reloadIntervalMs, logger);
    const identity = cert ? new ReloadingPemFiles({ cert: { path: cert, variable: `${v}_CERT_FILE` }, key: { path: key, variable: `${v}_KEY_FILE` } }, settings.reloadIntervalMs, logger) : null;
    const serverName = settings.serverName.trim();
    transport = {
      credentials: experimental.createCertificateProviderChannelCredentials(trust, identity),
      options: serverName ? { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName } : {},
      description: identity ? 'mutual TLS' : 'TLS',
    };
  } else if (settings.profile !== 'production' || settings.plaintextBehindMesh) {
    transport = { credentials: credentials.createInsecure(), options: {}, description: 'plaintext' };
  } else {
    throw new ConfigError([`${v}_CA_FILE: PROFILE=production refuses to send bearer tokens over plaintext gRPC: set it to the CA that signed the server's certificate, or GRPC_PLAINTEXT_BEHIND_MESH=true when a service mesh encrypts the traffic between pods`]);
  }
  logger.info({ transport: transport.description, variables: v }, 'gRPC client transport');
  return transport;
}

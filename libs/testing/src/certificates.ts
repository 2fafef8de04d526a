// A throw-away certificate authority for TLS tests: a CA, and server and client certificates it signs,
// made with the machine's openssl (no network) in a temporary directory that remove() deletes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its key, as files (for the services' variables) and as PEM (for clients in the test). */
export interface IssuedCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface TestCertificateAuthority {
  readonly dir: string;
  readonly caFile: string;
  readonly ca: Buffer;
  /** A server certificate for these DNS names and IP addresses (default: localhost and 127.0.0.1). */
  issueServer(name: string, dnsNames?: readonly string[], ipAddresses?: readonly string[]): IssuedCertificate;
  /** A client certificate (for mutual TLS) with this common name. */
  issueClient(name: string): IssuedCertificate;
  remove(): void;
}

const openssl = (args: readonly string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

/** Creates a new CA (ECDSA P-256: fast to generate) valid for a day. */
export function createTestCertificateAuthority(commonName = 'webhooks test CA'): TestCertificateAuthority {
  const dir = mkdtempSync(join(tmpdir(), 'test-ca-'));
  const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...keyArgs, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', `/CN=${commonName}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  let serial = 1;
  const issue = (name: string, extensions: string): IssuedCertificate => {
    openssl(['req', '-new', ...keyArgs, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(serial++), '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`], dir);
    const certFile = join(dir, `${name}.pem`);
    const keyFile = join(dir, `${name}.key`);
    return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
  };
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    ca: readFileSync(join(dir, 'ca.pem')),
    issueServer(name, dnsNames = ['localhost'], ipAddresses = ['127.0.0.1']) {
      const names = [...dnsNames.map((n) => `DNS:${n}`), ...ipAddresses.map((ip) => `IP:${ip}`)].join(',');
      return issue(name, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${names}\n`);
    },
    issueClient(name) {
      return issue(name, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

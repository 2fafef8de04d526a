import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkAuthStaysWithOrigin, checkEndpointAuth, checkRateLimit, decodeEndpointCredentials, encodeEndpointCredentials } from './endpoint-auth.js';
import { DomainError } from './errors.js';

const policy = { allowHttp: false, allowedHosts: [], maxLength: 2048 };

function rejects(run: () => unknown, message: RegExp): void {
  assert.throws(run, (error: unknown) => error instanceof DomainError && error.kind === 'invalid-argument' && message.test(error.message));
}

describe('checkRateLimit', () => {
  it('takes 0 as no limit and 1-1000 as a limit', () => {
    assert.equal(checkRateLimit(0), null);
    assert.equal(checkRateLimit(1), 1);
    assert.equal(checkRateLimit(1000), 1000);
  });
  it('refuses values outside 1-1000 naming the field', () => {
    rejects(() => checkRateLimit(1001), /^rate_limit: must be between 1 and 1000/);
    rejects(() => checkRateLimit(-5, 'webhook.rate_limit'), /^webhook.rate_limit:/);
  });
});

describe('checkEndpointAuth', () => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'a.key', '-out', 'a.pem', '-days', '1', '-subj', '/CN=a');
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'b.key', '-out', 'b.pem', '-days', '1', '-subj', '/CN=b');
  const certA = readFileSync(join(dir, 'a.pem'), 'utf8');
  const keyA = readFileSync(join(dir, 'a.key'), 'utf8');
  const keyB = readFileSync(join(dir, 'b.key'), 'utf8');

  it('means no authentication without a method', () => {
    assert.equal(checkEndpointAuth(undefined, policy), null);
    assert.equal(checkEndpointAuth({ method: undefined }, policy), null);
  });

  it('checks Basic credentials without echoing them', () => {
    assert.deepEqual(checkEndpointAuth({ method: { $case: 'basic', value: { username: 'acme', password: 'pa55' } } }, policy), { kind: 'basic', username: 'acme', password: 'pa55' });
    rejects(() => checkEndpointAuth({ method: { $case: 'basic', value: { username: 'a:b', password: 'x' } } }, policy), /^auth.basic.username: must not contain ":"$/);
    rejects(() => checkEndpointAuth({ method: { $case: 'basic', value: { username: 'a', password: '' } } }, policy), /^auth.basic.password: is required$/);
    rejects(() => checkEndpointAuth({ method: { $case: 'basic', value: { username: 'a', password: 'se\r\ncret' } } }, policy), /^auth.basic.password: must not contain control characters$/);
  });

  it('puts the OAuth token URL through the endpoint URL policy', () => {
    const value = { tokenUrl: 'https://auth.example.com/token', clientId: 'id', clientSecret: 's', scope: '', audience: 'api' };
    assert.equal(checkEndpointAuth({ method: { $case: 'oauthClientCredentials', value } }, policy)?.kind, 'oauth');
    rejects(() => checkEndpointAuth({ method: { $case: 'oauthClientCredentials', value: { ...value, tokenUrl: 'https://10.0.0.1/token' } } }, policy), /^auth.oauth_client_credentials.token_url: points to a private network address/);
    rejects(() => checkEndpointAuth({ method: { $case: 'oauthClientCredentials', value: { ...value, tokenUrl: 'http://auth.example.com/token' } } }, policy), /token_url: must use https/);
    rejects(() => checkEndpointAuth({ method: { $case: 'oauthClientCredentials', value: { ...value, clientSecret: '' } } }, policy), /client_secret: is required/);
  });

  it('accepts a matching certificate and key, refuses a key of another certificate and non-PEM text', () => {
    assert.equal(checkEndpointAuth({ method: { $case: 'mutualTls', value: { clientCertificatePem: certA, clientKeyPem: keyA } } }, policy)?.kind, 'mtls');
    rejects(() => checkEndpointAuth({ method: { $case: 'mutualTls', value: { clientCertificatePem: certA, clientKeyPem: keyB } } }, policy), /client_key_pem: does not belong to the client certificate/);
    rejects(() => checkEndpointAuth({ method: { $case: 'mutualTls', value: { clientCertificatePem: 'hello', clientKeyPem: keyA } } }, policy), /client_certificate_pem: is not a PEM certificate/);
    rejects(() => checkEndpointAuth({ method: { $case: 'mutualTls', value: { clientCertificatePem: certA, clientKeyPem: 'nope' } } }, policy), /client_key_pem: is not an unencrypted PEM private key/);
  });

  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=customer CA', '-addext', 'basicConstraints=critical,CA:TRUE');
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.pem', '-days', '1', '-subj', '/CN=endpoint', '-addext', 'basicConstraints=critical,CA:FALSE');
  const caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
  const leafPem = readFileSync(join(dir, 'leaf.pem'), 'utf8');
  const withCa = (caCertificatesPem: string) => checkEndpointAuth({ method: { $case: 'mutualTls', value: { clientCertificatePem: certA, clientKeyPem: keyA, caCertificatesPem } } }, policy);

  it('takes a CA bundle of one or more CA certificates, and none as the public CAs', () => {
    const one = withCa(`\n${caPem}\n`);
    assert.equal(one?.kind === 'mtls' && one.caPem, caPem.trim());
    const two = withCa(`${caPem}${caPem}`);
    assert.equal(two?.kind === 'mtls' && two.caPem?.match(/BEGIN CERTIFICATE/g)?.length, 2);
    const none = withCa('  ');
    assert.equal(none?.kind === 'mtls' && 'caPem' in none, false);
  });

  it('refuses a CA bundle that is not one, naming the certificate and saying what belongs there', () => {
    rejects(() => withCa('hello'), /^auth\.mutual_tls\.ca_certificates_pem: holds no PEM certificate/);
    rejects(() => withCa(leafPem), /ca_certificates_pem: the certificate \(CN=endpoint\) is not a CA certificate; give the CA that signed the endpoint's certificate/);
    rejects(() => withCa(`${caPem}${leafPem}`), /ca_certificates_pem: certificate 2 of 2 \(CN=endpoint\) is not a CA certificate/);
    rejects(() => withCa(`${caPem}${keyA}`), /ca_certificates_pem: holds something besides PEM certificates \(a private key does not belong here\)/);
    rejects(() => withCa(caPem.replace(/\n[A-Za-z0-9+/]{8}/, '\n!!!!!!!!')), /ca_certificates_pem: the certificate is not a valid PEM certificate/);
  });

  it('round-trips the sealed JSON form', () => {
    const credentials = checkEndpointAuth({ method: { $case: 'basic', value: { username: 'acme', password: 'pa55' } } }, policy)!;
    assert.deepEqual(decodeEndpointCredentials(encodeEndpointCredentials(credentials)), credentials);
    assert.throws(() => decodeEndpointCredentials('{"kind":"bearer"}'), /unknown kind/);
  });
});

describe('checkAuthStaysWithOrigin', () => {
  it('keeps authentication for another path of the same origin, and for a webhook without any', () => {
    checkAuthStaysWithOrigin('https://crm.example.com/hooks/a', 'https://crm.example.com/hooks/b', true, false);
    checkAuthStaysWithOrigin('https://crm.example.com/a', 'https://attacker.example.net/a', false, false);
  });

  it('refuses a move to another origin unless the same change sets or removes the authentication', () => {
    for (const next of ['https://attacker.example.net/hooks/a', 'https://crm.example.com:8443/hooks/a', 'http://crm.example.com/hooks/a', 'https://sub.crm.example.com/hooks/a']) {
      assert.throws(() => checkAuthStaysWithOrigin('https://crm.example.com/hooks/a', next, true, false), (error: Error) => /^webhook\.auth: the url moves from https:\/\/crm\.example\.com to /.test(error.message), next);
      checkAuthStaysWithOrigin('https://crm.example.com/hooks/a', next, true, true);
    }
  });
});

// Endpoint options a webhook may set besides its URL: a rate limit, and how the dispatcher proves itself
// to the endpoint (HTTP Basic, OAuth 2.0 client credentials, mutual TLS). Checks what a customer
// registers, and the JSON form the credentials are sealed in (SecretBox) for PostgreSQL and the routing
// table, so the control plane and the dispatcher read the same thing.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { invalidArgument } from './errors.js';
import { checkEndpointUrl, type UrlPolicy } from './url-policy.js';

/** Deliveries per second a webhook may be limited to. */
export const rateLimitRange = { min: 1, max: 1_000 } as const;

/** 0 (no limit) or 1-1000 deliveries per second; returns null for no limit. */
export function checkRateLimit(value: number, field = 'rate_limit'): number | null {
  if (value === 0) return null;
  if (!Number.isInteger(value) || value < rateLimitRange.min || value > rateLimitRange.max) {
    throw invalidArgument(field, `must be between ${rateLimitRange.min} and ${rateLimitRange.max} deliveries per second, or 0 for no limit (got ${value})`);
  }
  return value;
}

export type EndpointCredentials =
  | { readonly kind: 'basic'; readonly username: string; readonly password: string }
  | { readonly kind: 'oauth'; readonly tokenUrl: string; readonly clientId: string; readonly clientSecret: string; readonly scope: string; readonly audience: string }
  /** `caPem`: the CAs the endpoint's certificate must chain to instead of the public ones (absent: the public ones). */
  | { readonly kind: 'mtls'; readonly certificatePem: string; readonly keyPem: string; readonly caPem?: string };

export type EndpointAuthKindName = EndpointCredentials['kind'];
export const endpointAuthKinds = ['basic', 'oauth', 'mtls'] as const satisfies readonly EndpointAuthKindName[];

/** What a request carries (the shape of the generated EndpointAuth message; no transport import here). */
export interface EndpointAuthInput {
  readonly method:
    | { readonly $case: 'basic'; readonly value: { readonly username: string; readonly password: string } }
    | {
        readonly $case: 'oauthClientCredentials';
        readonly value: { readonly tokenUrl: string; readonly clientId: string; readonly clientSecret: string; readonly scope: string; readonly audience: string };
      }
    | { readonly $case: 'mutualTls'; readonly value: { readonly clientCertificatePem: string; readonly clientKeyPem: string; readonly caCertificatesPem?: string } }
    | undefined;
}

const maxCredentialLength = 1_024;
const maxPemLength = 64 * 1024;
// Control characters would let a value end the header it is sent in.
// eslint-disable-next-line no-control-regex -- matching them is the point
const controlCharacters = /[\u0000-\u001f\u007f]/;

function text(value: string, field: string, { required, max = maxCredentialLength }: { required: boolean; max?: number }): string {
  if (required && value.length === 0) throw invalidArgument(field, 'is required');
  if (value.length > max) throw invalidArgument(field, `must be at most ${max} characters`);
  if (controlCharacters.test(value)) throw invalidArgument(field, 'must not contain control characters');
  return value;
}

function pem(value: string, field: string): string {
  const trimmed = value.trim();
  if (trimmed.length === 0) throw invalidArgument(field, 'is required');
  if (trimmed.length > maxPemLength) throw invalidArgument(field, `must be at most ${maxPemLength} characters`);
  return trimmed;
}

/**
 * Checks a webhook's endpoint authentication; undefined (or no method) means none. The token URL passes
 * the same URL policy as the endpoint (its resolution is checked by the caller, which can do DNS).
 * Messages name the field but never echo a credential.
 */
export function checkEndpointAuth(input: EndpointAuthInput | undefined, policy: UrlPolicy, field = 'auth'): EndpointCredentials | null {
  const method = input?.method;
  if (!method) return null;
  switch (method.$case) {
    case 'basic': {
      const username = text(method.value.username, `${field}.basic.username`, { required: true });
      // RFC 7617: the user id cannot contain a colon, it separates it from the password.
      if (username.includes(':')) throw invalidArgument(`${field}.basic.username`, 'must not contain ":"');
      return { kind: 'basic', username, password: text(method.value.password, `${field}.basic.password`, { required: true }) };
    }
    case 'oauthClientCredentials': {
      const f = `${field}.oauth_client_credentials`;
      const verdict = checkEndpointUrl(method.value.tokenUrl, policy);
      if (!verdict.ok) throw invalidArgument(`${f}.token_url`, verdict.reason.replace(/^url /, ''));
      return {
        kind: 'oauth',
        tokenUrl: verdict.url.toString(),
        clientId: text(method.value.clientId, `${f}.client_id`, { required: true }),
        clientSecret: text(method.value.clientSecret, `${f}.client_secret`, { required: true }),
        scope: text(method.value.scope, `${f}.scope`, { required: false }),
        audience: text(method.value.audience, `${f}.audience`, { required: false }),
      };
    }
    case 'mutualTls': {
      const f = `${field}.mutual_tls`;
      const certificatePem = pem(method.value.clientCertificatePem, `${f}.client_certificate_pem`);
      const keyPem = pem(method.value.clientKeyPem, `${f}.client_key_pem`);
      let certificate: X509Certificate;
      try {
        certificate = new X509Certificate(certificatePem);
      } catch {
        throw invalidArgument(`${f}.client_certificate_pem`, 'is not a PEM certificate ("-----BEGIN CERTIFICATE-----...")');
      }
      let key: ReturnType<typeof createPrivateKey>;
      try {
        key = createPrivateKey(keyPem);
      } catch {
        throw invalidArgument(`${f}.client_key_pem`, 'is not an unencrypted PEM private key ("-----BEGIN PRIVATE KEY-----...")');
      }
      if (!certificate.checkPrivateKey(key)) throw invalidArgument(`${f}.client_key_pem`, 'does not belong to the client certificate');
      if (Date.parse(certificate.validTo) < Date.now()) throw invalidArgument(`${f}.client_certificate_pem`, `expired on ${certificate.validTo}`);
      const caPem = (method.value.caCertificatesPem ?? '').trim();
      if (caPem.length === 0) return { kind: 'mtls', certificatePem, keyPem };
      return { kind: 'mtls', certificatePem, keyPem, caPem: checkCaBundle(caPem, `${f}.ca_certificates_pem`) };
    }
  }
}

const certificateBlock = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * A CA bundle for one webhook's endpoint: one or more PEM certificates, each a CA (basicConstraints
 * CA:TRUE) that has not expired, and nothing else. Returns the certificates, one block after another.
 */
export function checkCaBundle(value: string, field: string): string {
  const bundle = pem(value, field);
  const blocks = bundle.match(certificateBlock) ?? [];
  if (blocks.length === 0) throw invalidArgument(field, 'holds no PEM certificate ("-----BEGIN CERTIFICATE-----...")');
  if (bundle.replace(certificateBlock, '').trim().length > 0) throw invalidArgument(field, 'holds something besides PEM certificates (a private key does not belong here)');
  blocks.forEach((block, i) => {
    const which = blocks.length > 1 ? `certificate ${i + 1} of ${blocks.length}` : 'the certificate';
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(block);
    } catch {
      throw invalidArgument(field, `${which} is not a valid PEM certificate`);
    }
    if (!certificate.ca) throw invalidArgument(field, `${which} (${certificate.subject.replaceAll('\n', ', ')}) is not a CA certificate; give the CA that signed the endpoint's certificate, not the endpoint's own`);
    if (Date.parse(certificate.validTo) < Date.now()) throw invalidArgument(field, `${which} (${certificate.subject.replaceAll('\n', ', ')}) expired on ${certificate.validTo}`);
  });
  return blocks.join('\n');
}

/** The JSON that is sealed; the kind travels with it so the reader needs nothing else. */
export function encodeEndpointCredentials(credentials: EndpointCredentials): string {
  return JSON.stringify(credentials);
}

export function decodeEndpointCredentials(json: string): EndpointCredentials {
  const value = JSON.parse(json) as EndpointCredentials;
  if (!endpointAuthKinds.includes(value?.kind)) throw new Error('sealed endpoint credentials of an unknown kind');
  return value;
}

/**
 * Endpoint authentication belongs to the endpoint it was given for. A URL change that keeps the origin
 * (scheme, host and port: another path, say) keeps it; one that moves the webhook to another origin must
 * carry the authentication again in the same change, or remove it, so that nobody who may edit a webhook
 * can point it at their own host and receive its credentials. Throws INVALID_ARGUMENT on `field` when a
 * change breaks that rule; the URLs are those already checked.
 */
export function checkAuthStaysWithOrigin(currentUrl: string, nextUrl: string, hasAuth: boolean, authChanged: boolean, field = 'webhook.auth'): void {
  if (!hasAuth || authChanged) return;
  const from = new URL(currentUrl).origin;
  const to = new URL(nextUrl).origin;
  if (from === to) return;
  throw invalidArgument(
    field,
    `the url moves from ${from} to ${to}, and endpoint authentication is never carried to another origin: send it again in the same update (update_mask "url,auth"), or remove it (auth without a method)`,
  );
}

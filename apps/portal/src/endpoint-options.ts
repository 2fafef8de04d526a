// The endpoint options of a webhook as the page sends and reads them: the rate limit and the endpoint
// authentication. Authentication is write-only in the API, so the page only ever learns its kind.
import { EndpointAuthKind, type EndpointAuth } from '@webhooks/contracts';
import { invalidArgument } from '@webhooks/domain';

/** What the page shows of a webhook's authentication: which kind is set, never a credential. */
export type AuthKindName = 'none' | 'basic' | 'oauth' | 'mtls';

const kindNames: Record<number, AuthKindName> = {
  [EndpointAuthKind.ENDPOINT_AUTH_KIND_BASIC]: 'basic',
  [EndpointAuthKind.ENDPOINT_AUTH_KIND_OAUTH_CLIENT_CREDENTIALS]: 'oauth',
  [EndpointAuthKind.ENDPOINT_AUTH_KIND_MUTUAL_TLS]: 'mtls',
};
export const authKindName = (kind: EndpointAuthKind): AuthKindName => kindNames[kind] ?? 'none';

/**
 * body.rateLimit: undefined leaves it as it is, null or 0 means no limit, otherwise deliveries per
 * second (the service checks the range, 1-1000).
 */
export function rateLimitOf(body: Record<string, unknown>): number | undefined {
  const value = body.rateLimit;
  if (value === undefined) return undefined;
  if (value === null || value === '') return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw invalidArgument('rate_limit', 'must be a whole number of deliveries per second (1-1000), or empty for no limit');
  return value;
}

const field = (auth: Record<string, unknown>, name: string, label: string, required: boolean): string => {
  const value = auth[name] ?? '';
  if (typeof value !== 'string') throw invalidArgument(`auth.${label}`, 'must be text');
  if (required && value.trim() === '') throw invalidArgument(`auth.${label}`, 'is required');
  return value;
};

/**
 * body.auth: undefined leaves it as it is, null (or kind "none") removes it, otherwise
 * { kind: "basic", username, password } | { kind: "oauth", tokenUrl, clientId, clientSecret, scope?,
 * audience? } | { kind: "mtls", certificatePem, keyPem, caPem? }. Returns null for "remove".
 */
export function endpointAuthOf(body: Record<string, unknown>): EndpointAuth | null | undefined {
  const auth = body.auth;
  if (auth === undefined) return undefined;
  if (auth === null) return null;
  if (typeof auth !== 'object' || Array.isArray(auth)) throw invalidArgument('auth', 'must be an object with a kind');
  const value = auth as Record<string, unknown>;
  switch (value.kind) {
    case 'none':
      return null;
    case 'basic':
      return { method: { $case: 'basic', value: { username: field(value, 'username', 'username', true), password: field(value, 'password', 'password', true) } } };
    case 'oauth':
      return {
        method: {
          $case: 'oauthClientCredentials',
          value: {
            tokenUrl: field(value, 'tokenUrl', 'token_url', true), clientId: field(value, 'clientId', 'client_id', true), clientSecret: field(value, 'clientSecret', 'client_secret', true),
            scope: field(value, 'scope', 'scope', false), audience: field(value, 'audience', 'audience', false),
          },
        },
      };
    case 'mtls':
      return {
        method: {
          $case: 'mutualTls',
          value: { clientCertificatePem: field(value, 'certificatePem', 'client_certificate_pem', true), clientKeyPem: field(value, 'keyPem', 'client_key_pem', true), caCertificatesPem: field(value, 'caPem', 'ca_certificates_pem', false) },
        },
      };
    default:
      throw invalidArgument('auth.kind', 'must be one of none, basic, oauth, mtls');
  }
}

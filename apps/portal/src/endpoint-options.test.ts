import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EndpointAuthKind } from '@webhooks/contracts';
import { authKindName, endpointAuthOf, rateLimitOf } from './endpoint-options.js';

describe('the endpoint options the page sends', () => {
  it('reads the rate limit: absent leaves it, empty or null removes it, a whole number sets it', () => {
    assert.equal(rateLimitOf({}), undefined);
    assert.equal(rateLimitOf({ rateLimit: null }), 0);
    assert.equal(rateLimitOf({ rateLimit: '' }), 0);
    assert.equal(rateLimitOf({ rateLimit: 5 }), 5);
    assert.throws(() => rateLimitOf({ rateLimit: 2.5 }), /rate_limit: must be a whole number/);
    assert.throws(() => rateLimitOf({ rateLimit: '5' }), /rate_limit: must be a whole number/);
  });

  it('turns each authentication kind into the API message, null or "none" into a removal', () => {
    assert.equal(endpointAuthOf({}), undefined);
    assert.equal(endpointAuthOf({ auth: null }), null);
    assert.equal(endpointAuthOf({ auth: { kind: 'none' } }), null);
    assert.deepEqual(endpointAuthOf({ auth: { kind: 'basic', username: 'u', password: 'p' } }), { method: { $case: 'basic', value: { username: 'u', password: 'p' } } });
    assert.deepEqual(endpointAuthOf({ auth: { kind: 'oauth', tokenUrl: 'https://id.example.com/token', clientId: 'c', clientSecret: 's' } }), {
      method: { $case: 'oauthClientCredentials', value: { tokenUrl: 'https://id.example.com/token', clientId: 'c', clientSecret: 's', scope: '', audience: '' } },
    });
    assert.deepEqual(endpointAuthOf({ auth: { kind: 'mtls', certificatePem: 'CERT', keyPem: 'KEY' } }), { method: { $case: 'mutualTls', value: { clientCertificatePem: 'CERT', clientKeyPem: 'KEY', caCertificatesPem: '' } } });
    assert.deepEqual(endpointAuthOf({ auth: { kind: 'mtls', certificatePem: 'CERT', keyPem: 'KEY', caPem: 'CA' } }), { method: { $case: 'mutualTls', value: { clientCertificatePem: 'CERT', clientKeyPem: 'KEY', caCertificatesPem: 'CA' } } });
  });

  it('names what is missing or wrong', () => {
    assert.throws(() => endpointAuthOf({ auth: { kind: 'basic', username: 'u' } }), /auth\.password: is required/);
    assert.throws(() => endpointAuthOf({ auth: { kind: 'oauth', tokenUrl: 'https://x', clientId: 'c', clientSecret: 7 } }), /auth\.client_secret: must be text/);
    assert.throws(() => endpointAuthOf({ auth: { kind: 'kerberos' } }), /auth\.kind: must be one of none, basic, oauth, mtls/);
    assert.throws(() => endpointAuthOf({ auth: 'basic' }), /auth: must be an object/);
  });

  it('shows only the kind of what is set', () => {
    assert.equal(authKindName(EndpointAuthKind.ENDPOINT_AUTH_KIND_UNSPECIFIED), 'none');
    assert.equal(authKindName(EndpointAuthKind.ENDPOINT_AUTH_KIND_BASIC), 'basic');
    assert.equal(authKindName(EndpointAuthKind.ENDPOINT_AUTH_KIND_OAUTH_CLIENT_CREDENTIALS), 'oauth');
    assert.equal(authKindName(EndpointAuthKind.ENDPOINT_AUTH_KIND_MUTUAL_TLS), 'mtls');
  });
});

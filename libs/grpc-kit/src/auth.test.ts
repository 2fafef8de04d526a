import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metadata } from '@grpc/grpc-js';
import { DomainError } from '@webhooks/domain';
import { TokenAuthenticator } from './auth.js';

const bearer = (token: string) => {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
};

describe('TokenAuthenticator', () => {
  const auth = new TokenAuthenticator(['service-token-1', 'crm-sync=crm-token-12345:ws_1|ws_2', 'ops.bot=ops-token-123456']);

  it('names a token by its NAME= prefix, or by its first four characters', () => {
    assert.equal(auth.authenticate(bearer('service-token-1')).tokenLabel, 'serv…');
    assert.equal(auth.authenticate(bearer('crm-token-12345')).tokenLabel, 'crm-sync');
    assert.equal(auth.authenticate(bearer('ops-token-123456')).tokenLabel, 'ops.bot');
  });

  it('keeps the workspace scope of a named token, and the name is not part of the token', () => {
    const crm = auth.authenticate(bearer('crm-token-12345'));
    crm.authorize('ws_2');
    assert.throws(() => crm.authorize('ws_3'), (error: unknown) => error instanceof DomainError && error.kind === 'permission-denied');
    assert.throws(() => crm.authorizeAll('watching every workspace'), /needs a token for every workspace/);
    auth.authenticate(bearer('ops-token-123456')).authorizeAll('watching every workspace');
    assert.throws(() => auth.authenticate(bearer('crm-sync=crm-token-12345')), /not valid/);
  });
});

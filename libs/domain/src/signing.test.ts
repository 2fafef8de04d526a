import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { generateSigningSecret, maskSecret, signatureHeaders } from './signing.js';

describe('Standard Webhooks signing', () => {
  const body = Buffer.from(JSON.stringify({ id: 'evt_1', type: 'contact.created', data: { name: 'Zoë' } }));
  const now = Math.floor(Date.now() / 1000);

  it('produces headers the public standardwebhooks library verifies', () => {
    const secret = generateSigningSecret();
    const headers = signatureHeaders([secret], 'evt_1.wh_1', now, body);
    assert.deepEqual(new Webhook(secret).verify(body.toString(), headers), JSON.parse(body.toString()));
  });

  it('signs with every secret during a rotation, each verifiable on its own', () => {
    const current = generateSigningSecret();
    const previous = generateSigningSecret();
    const headers = signatureHeaders([current, previous], 'evt_2.wh_1', now, body);
    assert.equal(headers['webhook-signature'].split(' ').length, 2);
    new Webhook(current).verify(body.toString(), headers);
    new Webhook(previous).verify(body.toString(), headers);
    assert.throws(() => new Webhook(generateSigningSecret()).verify(body.toString(), headers));
  });

  it('detects a changed body', () => {
    const secret = generateSigningSecret();
    const headers = signatureHeaders([secret], 'evt_3.wh_1', now, body);
    assert.throws(() => new Webhook(secret).verify(body.toString().replace('Zoë', 'Zoe'), headers));
  });

  it('masks all but the first four characters of the key', () => {
    const secret = generateSigningSecret();
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const masked = maskSecret(secret);
    assert.equal(masked.slice(0, 10), secret.slice(0, 10));
    assert.ok(!masked.includes(secret.slice(10, 20)));
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SecretBox } from './secret-box.js';

describe('SecretBox', () => {
  const box = SecretBox.fromBase64(randomBytes(32).toString('base64'));

  it('opens what it sealed, with a fresh nonce each time', () => {
    const a = box.seal('whsec_abc');
    const b = box.seal('whsec_abc');
    assert.notDeepEqual(a, b);
    assert.equal(box.open(a), 'whsec_abc');
    assert.equal(box.open(b), 'whsec_abc');
  });

  it('refuses a tampered or foreign ciphertext', () => {
    const sealed = box.seal('whsec_abc');
    sealed[14] = sealed[14]! ^ 1;
    assert.throws(() => box.open(sealed));
    const other = SecretBox.fromBase64(randomBytes(32).toString('base64'));
    assert.throws(() => other.open(box.seal('whsec_abc')));
  });

  it('demands a 32-byte key', () => {
    assert.throws(() => SecretBox.fromBase64(randomBytes(16).toString('base64')), /32 bytes, got 16/);
  });
});

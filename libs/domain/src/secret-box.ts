// Signing secrets are stored and travel (routing table) encrypted with AES-256-GCM under one platform key,
// so neither a database dump nor a read of the NATS bucket reveals them.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const nonceBytes = 12;
const tagBytes = 16;

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** The key is base64 of exactly 32 bytes (e.g. `openssl rand -base64 32`). */
  static fromBase64(keyBase64: string): SecretBox {
    const key = Buffer.from(keyBase64, 'base64');
    if (key.length !== 32) throw new Error(`the secret encryption key must be base64 of 32 bytes, got ${key.length} bytes`);
    return new SecretBox(key);
  }

  /** nonce (12 bytes) + ciphertext + tag (16 bytes). */
  seal(plain: string): Buffer {
    const nonce = randomBytes(nonceBytes);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return Buffer.concat([nonce, body, cipher.getAuthTag()]);
  }

  open(sealed: Uint8Array): string {
    const buf = Buffer.from(sealed);
    if (buf.length < nonceBytes + tagBytes) throw new Error('sealed secret is too short');
    const decipher = createDecipheriv('aes-256-gcm', this.key, buf.subarray(0, nonceBytes));
    decipher.setAuthTag(buf.subarray(buf.length - tagBytes));
    return Buffer.concat([decipher.update(buf.subarray(nonceBytes, buf.length - tagBytes)), decipher.final()]).toString('utf8');
  }
}

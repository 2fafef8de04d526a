// Standard Webhooks signatures (https://www.standardwebhooks.com): receivers verify them with any
// Standard Webhooks library. During a secret rotation a delivery carries one signature per valid secret.
import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';

const secretPrefix = 'whsec_';

/** A new signing secret: "whsec_" + base64 of 32 random bytes (the spec asks for 24 to 64). */
export function generateSigningSecret(): string {
  return secretPrefix + randomBytes(32).toString('base64');
}

/** The secret with only its first characters readable, for every answer except create and rotate. */
export function maskSecret(secret: string): string {
  const key = secret.startsWith(secretPrefix) ? secret.slice(secretPrefix.length) : secret;
  return `${secretPrefix}${key.slice(0, 4)}${'*'.repeat(24)}`;
}

/**
 * The HMAC key of a secret, made once and reused: passing a KeyObject to createHmac skips the key
 * conversion that a string or Buffer costs on every signature.
 */
export function signingKey(secret: string): KeyObject {
  return createSecretKey(Buffer.from(secret.startsWith(secretPrefix) ? secret.slice(secretPrefix.length) : secret, 'base64'));
}

/** One `v1,<base64 HMAC-SHA256>` signature of `${id}.${timestamp}.${body}`. */
export function sign(secret: string | KeyObject, messageId: string, timestampSeconds: number, body: Uint8Array): string {
  const mac = createHmac('sha256', typeof secret === 'string' ? signingKey(secret) : secret);
  mac.update(`${messageId}.${timestampSeconds}.`);
  mac.update(body);
  return `v1,${mac.digest('base64')}`;
}

/** The three Standard Webhooks headers for one delivery, signed with every given secret. */
export function signatureHeaders(
  secrets: readonly (string | KeyObject)[],
  messageId: string,
  timestampSeconds: number,
  body: Uint8Array,
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  return {
    'webhook-id': messageId,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': secrets.map((secret) => sign(secret, messageId, timestampSeconds, body)).join(' '),
  };
}

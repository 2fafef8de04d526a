// Portal session tokens: a workspace id and an expiry, signed with HMAC-SHA256 under the portal key.
// The subscription service issues them (CreatePortalSession); the portal verifies one on every API call.
// They are not gRPC bearer tokens: the services only accept the tokens configured in API_TOKENS.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { checkWorkspaceId } from './ids.js';
import { DomainError, invalidArgument } from './errors.js';

/** Marks a portal session token, so a token pasted in the wrong place is recognised in messages. */
const prefix = 'wps1';

export const defaultPortalSessionTtlMs = 60 * 60_000;
/** A link is for one sitting of an admin; a day bounds how long a leaked one works. */
export const maxPortalSessionTtlMs = 24 * 60 * 60_000;

export interface PortalSession {
  readonly workspaceId: string;
  readonly expiresAt: Date;
}

/** The key must be long enough that guessing it is hopeless: 32 bytes, as base64 or raw text. */
export function portalSessionKey(configured: string): Buffer {
  const key = Buffer.from(configured, 'utf8');
  if (key.length < 32) throw new Error('PORTAL_SESSION_KEY must be at least 32 characters long');
  return key;
}

const mac = (key: Buffer, payload: string) => createHmac('sha256', key).update(`${prefix}.${payload}`).digest('base64url');

/** Whether a ttl is acceptable; 0 means the default (1 hour). */
export function portalSessionTtl(ttlMs: number): number {
  if (ttlMs === 0) return defaultPortalSessionTtlMs;
  if (!Number.isFinite(ttlMs) || ttlMs < 60_000 || ttlMs > maxPortalSessionTtlMs) throw invalidArgument('ttl', 'must be between 1 minute and 24 hours (0 means 1 hour)');
  return ttlMs;
}

export function signPortalSession(key: Buffer, session: PortalSession): string {
  checkWorkspaceId(session.workspaceId);
  const payload = Buffer.from(JSON.stringify({ ws: session.workspaceId, exp: Math.floor(session.expiresAt.getTime() / 1000) })).toString('base64url');
  return `${prefix}.${payload}.${mac(key, payload)}`;
}

const refused = (why: string) => new DomainError('unauthenticated', why);

/** The session a token carries; throws `unauthenticated` for a forged, malformed or expired token. */
export function verifyPortalSession(key: Buffer, token: string, now: Date): PortalSession {
  const [marker, payload, signature, ...rest] = token.split('.');
  if (marker !== prefix || !payload || !signature || rest.length > 0) throw refused('this is not a portal session token; open the portal from a new link');
  const expected = Buffer.from(mac(key, payload));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw refused('the portal session token is not valid; open the portal from a new link');
  let claims: { ws?: unknown; exp?: unknown };
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
  } catch {
    throw refused('the portal session token is not valid; open the portal from a new link');
  }
  if (typeof claims.ws !== 'string' || typeof claims.exp !== 'number') throw refused('the portal session token is not valid; open the portal from a new link');
  const expiresAt = new Date(claims.exp * 1000);
  if (expiresAt.getTime() <= now.getTime()) throw refused('the portal session has expired; open the portal from a new link');
  return { workspaceId: claims.ws, expiresAt };
}

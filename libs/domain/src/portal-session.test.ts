import assert from 'node:assert/strict';
import { test } from 'node:test';
import { portalSessionKey, portalSessionTtl, signPortalSession, verifyPortalSession } from './portal-session.js';

const key = portalSessionKey('a-test-key-that-is-32-characters!');
const now = new Date('2026-12-01T10:00:00Z');
const inAnHour = new Date(now.getTime() + 3_600_000);

test('a signed session verifies to its workspace and expiry', () => {
  const token = signPortalSession(key, { workspaceId: 'ws_1', expiresAt: inAnHour });
  assert.deepEqual(verifyPortalSession(key, token, now), { workspaceId: 'ws_1', expiresAt: inAnHour });
});

test('an expired session is refused', () => {
  const token = signPortalSession(key, { workspaceId: 'ws_1', expiresAt: inAnHour });
  assert.throws(() => verifyPortalSession(key, token, new Date(inAnHour.getTime() + 1000)), /expired/);
});

test('a changed workspace or another key is refused', () => {
  const token = signPortalSession(key, { workspaceId: 'ws_1', expiresAt: inAnHour });
  const [marker, , signature] = token.split('.');
  const forged = `${marker}.${Buffer.from(JSON.stringify({ ws: 'ws_2', exp: inAnHour.getTime() / 1000 })).toString('base64url')}.${signature}`;
  assert.throws(() => verifyPortalSession(key, forged, now), (e: Error & { kind?: string }) => e.kind === 'unauthenticated');
  assert.throws(() => verifyPortalSession(portalSessionKey('another-key-that-is-32-characters'), token, now), /not valid/);
  assert.throws(() => verifyPortalSession(key, 'local-dev-token', now), /not a portal session token/);
});

test('ttl: 0 is an hour, out of range is refused, short keys are refused', () => {
  assert.equal(portalSessionTtl(0), 3_600_000);
  assert.throws(() => portalSessionTtl(1000), /ttl/);
  assert.throws(() => portalSessionTtl(25 * 3_600_000), /ttl/);
  assert.throws(() => portalSessionKey('short'), /PORTAL_SESSION_KEY/);
});

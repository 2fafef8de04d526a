import type { EnvSource } from './schema.js';

/** The development token the local profile accepts; never accepted in production. */
export const localDevToken = 'local-dev-token';

/**
 * Defaults of the local profile (PROFILE unset or "local"): a development token, a fixed development
 * encryption key, and endpoints on this machine or private networks allowed over http. In production
 * (PROFILE=production) none of these apply: tokens and the key must be configured, and endpoints must be
 * public https URLs.
 */
export const localProfileDefaults: Readonly<Record<string, string>> = {
  API_TOKENS: localDevToken,
  NOTIFIER_API_TOKEN: localDevToken,
  PORTAL_API_TOKEN: localDevToken,
  // 32 bytes of a fixed, published value: fine for a laptop, refused by nothing but never used in production.
  SECRET_ENCRYPTION_KEY: 'bG9jYWwtZGV2ZWxvcG1lbnQta2V5LW5vdC1zZWNyZXQ=',
  // Signs portal session links (subscription service) and verifies them (portal); a published value too.
  PORTAL_SESSION_KEY: 'local-development-portal-session-key-not-secret',
  ALLOW_HTTP_ENDPOINTS: 'true',
  ALLOWED_ENDPOINT_HOSTS: 'localhost,127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16',
};

/** The environment with the profile's defaults under it: set variables always win. */
export function withProfileDefaults(env: EnvSource): EnvSource {
  const profile = env.PROFILE?.trim() || 'local';
  if (profile !== 'local') return env;
  const merged: Record<string, string | undefined> = { ...localProfileDefaults };
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value.trim() !== '') merged[key] = value;
  return merged;
}

// What the webhooks portal asks of the control plane beyond the webhook RPCs: signed session links
// (CreatePortalSession) and the workspace's breaker state as the dispatchers keep it in KV (GetBreakerState).
import { decodeBreakerState, portalSessionTtl, signPortalSession, type BreakerPolicy } from '@webhooks/domain';
import type { KV, Topology } from '@webhooks/messaging';

export interface PortalLink {
  readonly url: string;
  readonly token: string;
  readonly expiresAt: Date;
}

/** Links to the portal for one workspace; the token rides in the fragment so it never reaches a server log. */
export function portalLinks(key: Buffer, portalUrl: string) {
  const base = portalUrl.replace(/\/+$/, '');
  return (workspaceId: string, ttlMs: number, now = new Date()): PortalLink => {
    const expiresAt = new Date(now.getTime() + portalSessionTtl(ttlMs));
    const token = signPortalSession(key, { workspaceId, expiresAt });
    return { url: `${base}/#token=${token}`, token, expiresAt };
  };
}

export interface BreakerReport {
  readonly failureCount: number;
  readonly threshold: number;
  readonly windowMs: number;
}

/**
 * Reads the breaker bucket (owned by the dispatchers, written with compare-and-set; read only here) and
 * counts the failures still inside the window. One read per call: nothing is cached, so the count is
 * the dispatchers' own.
 */
export function breakerReader(kv: KV, topology: Topology, policy: BreakerPolicy) {
  return async (workspaceId: string, now = Date.now()): Promise<BreakerReport> => {
    const entry = await kv.get(topology.keys.workspace(workspaceId));
    const state = decodeBreakerState(entry?.operation === 'PUT' ? entry.value : undefined);
    const failureCount = state.failures.filter((failure) => failure.at > now - policy.windowMs).length;
    return { failureCount, threshold: policy.threshold, windowMs: policy.windowMs };
  };
}

// Keeps the routing table (KV wh_routes) equal to PostgreSQL. Every change is committed to PostgreSQL
// first and then written here; reconcile() repairs whatever a crash between the two left behind.
import type { EntityManager } from '@mikro-orm/postgresql';
import { Plan, Route, WorkspaceRoute, type RouteSecret } from '@webhooks/contracts';
import type { KV, Topology } from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import { WebhookEntity, WorkspaceEntity, type PlanName, type Webhook, type Workspace } from './persistence/entities.js';

export function planToProto(plan: PlanName): Plan {
  return Plan[`PLAN_${plan}`];
}

export function routeOf(webhook: Webhook, workspaceId: string): Route {
  const secrets: RouteSecret[] = [{ encrypted: Buffer.from(webhook.secretSealed), expireTime: undefined }];
  if (webhook.previousSecretSealed && webhook.previousSecretExpiresAt) {
    secrets.push({ encrypted: Buffer.from(webhook.previousSecretSealed), expireTime: webhook.previousSecretExpiresAt });
  }
  return {
    webhookId: webhook.id,
    workspaceId,
    name: webhook.name,
    url: webhook.url,
    eventTypes: webhook.eventTypes,
    headers: webhook.headers,
    active: webhook.status === 'active',
    secrets,
    version: webhook.version,
  };
}

export function workspaceRouteOf(workspace: Workspace): WorkspaceRoute {
  return { workspaceId: workspace.id, plan: planToProto(workspace.plan) };
}

export class RoutePublisher {
  constructor(
    private readonly kv: KV,
    private readonly topology: Topology,
    private readonly logger: Logger,
  ) {}

  async putWorkspace(workspace: Workspace): Promise<void> {
    await this.kv.put(this.topology.keys.workspace(workspace.id), WorkspaceRoute.encode(workspaceRouteOf(workspace)).finish());
  }

  async putWebhook(webhook: Webhook, workspaceId: string): Promise<void> {
    await this.kv.put(this.topology.keys.webhook(workspaceId, webhook.id), Route.encode(routeOf(webhook, workspaceId)).finish());
  }

  async removeWebhook(workspaceId: string, webhookId: string): Promise<void> {
    await this.kv.delete(this.topology.keys.webhook(workspaceId, webhookId));
  }

  /**
   * Publishes after a committed change. A failure here leaves the table behind PostgreSQL, never ahead of
   * it; it is logged and the next reconcile() repairs it, so the caller's committed change still stands.
   */
  async publishAfterCommit(what: string, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      this.logger.error({ err: error, what }, 'routing table write failed; the reconciler will repair it');
    }
  }

  /** Makes the bucket equal to PostgreSQL: puts what differs, deletes what PostgreSQL no longer has. */
  async reconcile(em: EntityManager): Promise<{ written: number; deleted: number }> {
    const expected = new Map<string, Uint8Array>();
    for (const workspace of await em.find(WorkspaceEntity, {})) {
      expected.set(this.topology.keys.workspace(workspace.id), WorkspaceRoute.encode(workspaceRouteOf(workspace)).finish());
    }
    for (const webhook of await em.find(WebhookEntity, {})) {
      const workspaceId = webhook.workspace.id;
      expected.set(this.topology.keys.webhook(workspaceId, webhook.id), Route.encode(routeOf(webhook, workspaceId)).finish());
    }
    let written = 0;
    let deleted = 0;
    const present = new Set<string>();
    for await (const key of await this.kv.keys()) present.add(key);
    for (const [key, value] of expected) {
      const current = present.has(key) ? await this.kv.get(key) : null;
      if (!current || current.operation !== 'PUT' || !Buffer.from(current.value).equals(Buffer.from(value))) {
        await this.kv.put(key, value);
        written++;
      }
    }
    for (const key of present) {
      if (!expected.has(key)) {
        await this.kv.delete(key);
        deleted++;
      }
    }
    if (written > 0 || deleted > 0) this.logger.warn({ written, deleted }, 'routing table repaired');
    return { written, deleted };
  }
}

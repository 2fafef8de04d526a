// Keeps the routing table (KV wh_routes) equal to PostgreSQL. Every change is committed to PostgreSQL
// first and then written here; reconcile() repairs whatever a crash between the two left behind.
//
// Several replicas write the same keys at once: after their own commits, and in their reconcile passes
// from rows read a while ago. So no write is last-writer-wins. Each key is settled by compare-and-set on
// the entry's revision, and a route never replaces one with a newer row version (Route.version,
// WorkspaceRoute.version: the rows' optimistic-lock versions). A delete marker carries no version, so
// where the bucket has none (absent or deleted) PostgreSQL is read again, AFTER the entry: a delete
// committed in between then moves the revision and the write fails its compare-and-set.
import type { MikroORM } from '@mikro-orm/postgresql';
import { EndpointAuthKind, Plan, Route, WorkspaceRoute, type RouteSecret } from '@webhooks/contracts';
import type { EndpointAuthKindName } from '@webhooks/domain';
import { isWriteConflict, type KV, type Topology } from '@webhooks/messaging';
import type { Logger } from '@webhooks/telemetry';
import { WebhookEntity, WorkspaceEntity, type PlanName, type Webhook, type Workspace } from './persistence/entities.js';

/** Rows per PostgreSQL page in a reconcile pass: bounds the pass's memory whatever the table sizes. */
const defaultPageSize = 500;
/** Keys settled at once within a page: round trips to NATS overlap, without flooding it. */
const keysInFlight = 16;
/** A key conflicts only while others write it; a few rounds settle it, more means something is wrong. */
const maxRounds = 50;
export const authKindToProto: Record<EndpointAuthKindName, EndpointAuthKind> = {
  basic: EndpointAuthKind.ENDPOINT_AUTH_KIND_BASIC,
  oauth: EndpointAuthKind.ENDPOINT_AUTH_KIND_OAUTH_CLIENT_CREDENTIALS,
  mtls: EndpointAuthKind.ENDPOINT_AUTH_KIND_MUTUAL_TLS,
};

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
    rateLimit: webhook.rateLimit ?? undefined,
    auth: webhook.authKind && webhook.authSealed ? { kind: authKindToProto[webhook.authKind], encrypted: Buffer.from(webhook.authSealed) } : undefined,
  };
}

export function workspaceRouteOf(workspace: Workspace): WorkspaceRoute {
  return { workspaceId: workspace.id, plan: planToProto(workspace.plan), version: workspace.version };
}

/** A route as it should be in the bucket: the encoded value and the row version it was made from. */
interface VersionedRoute {
  readonly version: number;
  readonly value: Uint8Array;
}

/** What settling one key did. */
type Settled = 'written' | 'deleted' | 'newer' | 'current' | 'absent';

/** The routing-table key of a row, parsed back; undefined for a key no row could produce. */
type RouteKey = { readonly kind: 'workspace'; readonly workspaceId: string } | { readonly kind: 'webhook'; readonly workspaceId: string; readonly webhookId: string };

function parseKey(key: string): RouteKey | undefined {
  const parts = key.split('.');
  if (parts[0] === 'ws' && parts.length === 2) return { kind: 'workspace', workspaceId: parts[1]! };
  if (parts[0] === 'wh' && parts.length === 3) return { kind: 'webhook', workspaceId: parts[1]!, webhookId: parts[2]! };
  return undefined;
}

function versionOf(key: RouteKey, value: Uint8Array): number {
  try {
    return key.kind === 'workspace' ? WorkspaceRoute.decode(value).version : Route.decode(value).version;
  } catch {
    // Bytes no writer of ours produced: anything from PostgreSQL replaces them.
    return -1;
  }
}

/** What one reconcile pass did; logged as one line. */
export interface ReconcileReport {
  /** Keys compared with PostgreSQL: every row, and every key of the bucket no row produced. */
  readonly checked: number;
  readonly written: number;
  readonly deleted: number;
  /** Keys the bucket already held at a newer version than the pass had read (another writer was ahead). */
  readonly skippedNewer: number;
  readonly durationMs: number;
}

/** Points where a test can hold a pass, to force the races the pass must survive. */
export interface ReconcileHooks {
  /** Called after each page is read from PostgreSQL and before it is compared with the bucket. */
  readonly afterPageRead?: (kind: 'workspaces' | 'webhooks', ids: readonly string[]) => Promise<void>;
}

export interface RoutePublisherOptions {
  readonly pageSize?: number;
  /** Called between deciding a key's write (entry and row read) and making it: where a test holds a writer. */
  readonly beforeWrite?: (key: string) => Promise<void>;
}

export class RoutePublisher {
  private readonly pageSize: number;
  private readonly beforeWrite: ((key: string) => Promise<void>) | undefined;

  constructor(
    private readonly orm: MikroORM,
    private readonly kv: KV,
    private readonly topology: Topology,
    private readonly logger: Logger,
    options: RoutePublisherOptions = {},
  ) {
    this.pageSize = options.pageSize ?? defaultPageSize;
    this.beforeWrite = options.beforeWrite;
  }

  async putWorkspace(workspace: Workspace): Promise<void> {
    const key: RouteKey = { kind: 'workspace', workspaceId: workspace.id };
    await this.settle(key, this.workspaceVersioned(workspace));
  }

  async putWebhook(webhook: Webhook, workspaceId: string): Promise<void> {
    await this.settle({ kind: 'webhook', workspaceId, webhookId: webhook.id }, this.webhookVersioned(webhook, workspaceId));
  }

  /** Removes a deleted webhook's route, unless PostgreSQL still has the webhook. */
  async removeWebhook(workspaceId: string, webhookId: string): Promise<void> {
    await this.settle({ kind: 'webhook', workspaceId, webhookId }, undefined);
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

  /**
   * Makes the bucket equal to PostgreSQL without undoing anyone's newer write: pages through the rows
   * (keyset by id) settling each one's key, then checks every key of the bucket no row produced against
   * PostgreSQL, one by one, before a conditional delete.
   */
  async reconcile(hooks: ReconcileHooks = {}): Promise<ReconcileReport> {
    const started = performance.now();
    const counts = { checked: 0, written: 0, deleted: 0, skippedNewer: 0 };
    const count = (settled: Settled) => {
      counts.checked++;
      if (settled === 'written') counts.written++;
      else if (settled === 'deleted') counts.deleted++;
      else if (settled === 'newer') counts.skippedNewer++;
    };
    const produced = new Set<string>();

    for (let after: string | undefined; ; ) {
      const page = await this.orm.em.fork().find(WorkspaceEntity, after ? { id: { $gt: after } } : {}, { orderBy: { id: 'asc' }, limit: this.pageSize });
      if (page.length === 0) break;
      await hooks.afterPageRead?.('workspaces', page.map((w) => w.id));
      await inBatches(page, async (workspace) => {
        const key: RouteKey = { kind: 'workspace', workspaceId: workspace.id };
        produced.add(this.keyOf(key));
        count(await this.settle(key, this.workspaceVersioned(workspace)));
      });
      after = page[page.length - 1]!.id;
    }
    for (let after: string | undefined; ; ) {
      const page = await this.orm.em.fork().find(WebhookEntity, after ? { id: { $gt: after } } : {}, { orderBy: { id: 'asc' }, limit: this.pageSize });
      if (page.length === 0) break;
      await hooks.afterPageRead?.('webhooks', page.map((w) => w.id));
      await inBatches(page, async (webhook) => {
        const key: RouteKey = { kind: 'webhook', workspaceId: webhook.workspace.id, webhookId: webhook.id };
        produced.add(this.keyOf(key));
        count(await this.settle(key, this.webhookVersioned(webhook, webhook.workspace.id)));
      });
      after = page[page.length - 1]!.id;
    }

    // Keys written after their rows' pages were read (created meanwhile) are among these too: settling
    // reads the row again, so they stay.
    const unproduced: string[] = [];
    for await (const key of await this.kv.keys()) if (!produced.has(key)) unproduced.push(key);
    await inBatches(unproduced, async (key) => count(await this.settleKey(key)));

    const report: ReconcileReport = { ...counts, durationMs: Math.round(performance.now() - started) };
    if (report.written > 0 || report.deleted > 0) this.logger.warn(report, 'routing table repaired');
    else this.logger.info(report, 'routing table checked');
    return report;
  }

  /** Settles a key found in the bucket, by what PostgreSQL has for it now. */
  private settleKey(key: string): Promise<Settled> {
    const parsed = parseKey(key);
    // Not a key any row produces: nothing in PostgreSQL stands behind it.
    if (!parsed) return this.settleUnknown(key);
    return this.settle(parsed, undefined);
  }

  private async settleUnknown(key: string): Promise<Settled> {
    for (let round = 1; ; round++) {
      const entry = await this.kv.get(key);
      if (!entry || entry.operation !== 'PUT') return 'absent';
      try {
        await this.kv.delete(key, { previousSeq: entry.revision });
        return 'deleted';
      } catch (error) {
        if (!isWriteConflict(error) || round >= maxRounds) throw error;
      }
    }
  }

  /**
   * Brings one key to PostgreSQL's state, or leaves it if the bucket is newer. `ours` is the route the
   * caller read (after its commit, or in a reconcile page); undefined when the caller has none (a delete,
   * a key no page produced), and then PostgreSQL is read now.
   */
  private async settle(key: RouteKey, ours: VersionedRoute | undefined): Promise<Settled> {
    const name = this.keyOf(key);
    for (let round = 1; ; round++) {
      const entry = await this.kv.get(name);
      const live = entry !== null && entry.operation === 'PUT';
      const revision = entry?.revision ?? 0;
      // Read PostgreSQL only after the entry: the revision below is then older than this read.
      const wanted = live && ours ? ours : await this.current(key);
      await this.beforeWrite?.(name);
      try {
        if (!wanted) {
          // The row is gone for good (ids are never reused). A marker is written even over an absent or
          // deleted key: it moves the revision under a writer that read the row before the delete.
          await this.kv.delete(name, { previousSeq: revision });
          return live ? 'deleted' : 'absent';
        }
        if (live) {
          const theirs = versionOf(key, entry.value);
          if (theirs > wanted.version) return 'newer';
          if (theirs === wanted.version) return 'current';
        }
        // previousSeq 0 means "only if the key has no entry at all"; kv.create() is not used because it
        // retries over a delete marker on its own, which would undo a concurrent delete.
        await this.kv.put(name, wanted.value, { previousSeq: revision });
        return 'written';
      } catch (error) {
        if (!isWriteConflict(error) || round >= maxRounds) throw error;
      }
    }
  }

  /** The route PostgreSQL has for a key now, read on a fresh EntityManager (no cached rows). */
  private async current(key: RouteKey): Promise<VersionedRoute | undefined> {
    const em = this.orm.em.fork();
    if (key.kind === 'workspace') {
      const workspace = await em.findOne(WorkspaceEntity, { id: key.workspaceId });
      return workspace ? this.workspaceVersioned(workspace) : undefined;
    }
    const webhook = await em.findOne(WebhookEntity, { id: key.webhookId, workspace: key.workspaceId });
    return webhook ? this.webhookVersioned(webhook, key.workspaceId) : undefined;
  }

  private keyOf(key: RouteKey): string {
    return key.kind === 'workspace' ? this.topology.keys.workspace(key.workspaceId) : this.topology.keys.webhook(key.workspaceId, key.webhookId);
  }

  private workspaceVersioned(workspace: Workspace): VersionedRoute {
    return { version: workspace.version, value: WorkspaceRoute.encode(workspaceRouteOf(workspace)).finish() };
  }

  private webhookVersioned(webhook: Webhook, workspaceId: string): VersionedRoute {
    return { version: webhook.version, value: Route.encode(routeOf(webhook, workspaceId)).finish() };
  }
}

/** Runs `work` over the items, keysInFlight at a time. */
async function inBatches<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += keysInFlight) await Promise.all(items.slice(i, i + keysInFlight).map(work));
}

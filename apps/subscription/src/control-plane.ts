// What a workspace admin does in Settings > Integrations > Webhooks, as transactions on PostgreSQL
// followed by writes to the routing table. No gRPC here: handlers translate in grpc.ts.
import { LockMode, OptimisticLockError, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import {
  aborted,
  alreadyExists,
  checkCustomHeaders,
  checkEndpointAuth,
  checkAuthStaysWithOrigin,
  checkEndpointResolution,
  checkEndpointUrl,
  checkEventTypes,
  checkRateLimit,
  encodeEndpointCredentials,
  checkResourceId,
  checkWorkspaceId,
  failedPrecondition,
  generateSigningSecret,
  invalidArgument,
  keepRedactedHeaders,
  maskSecret,
  newId,
  notFound,
  type EndpointAuthInput,
  type EndpointCredentials,
  type HostResolver,
  type SecretBox,
  type UrlPolicy,
} from '@webhooks/domain';
import { WebhookEntity, WorkspaceEntity, type PlanName, type Webhook, type Workspace } from './persistence/entities.js';
import type { ReconcileReport, RoutePublisher } from './routes.js';
import { recordActivity, systemActor, unattributed, type Actor } from './activity/activity-log.js';

/** The webhook's fields as the API names them, for an "edited" record. */
const apiFieldNames: Record<Exclude<WebhookField, 'auth'>, string> = { name: 'name', url: 'url', eventTypes: 'event_types', headers: 'headers', rateLimit: 'rate_limit' };

const plansWithWebhooks: ReadonlySet<PlanName> = new Set(['ADVANCED', 'ENTERPRISE']);
const emailPattern = /^[^\s@<>(),;:"]+@[^\s@<>(),;:"]+\.[^\s@<>(),;:"]+$/;
const maxPageSize = 100;
const defaultPageSize = 50;
/** How long an endpoint's name may take to resolve at registration before it counts as unresolvable. */
const defaultHostLookupTimeoutMs = 2_000;

export interface ControlPlaneSettings {
  readonly urlPolicy: UrlPolicy;
  readonly maxWebhooksPerWorkspace: number;
  readonly secretRotationGraceMs: number;
  /** Removes a webhook's failures from its workspace's breaker window (called on activation). */
  readonly forgetFailures: (workspaceId: string, webhookId: string) => Promise<void>;
  /** Resolves an endpoint's host name at registration (production: dns.promises.lookup, all addresses). */
  readonly resolveHost: HostResolver;
  readonly hostLookupTimeoutMs?: number;
}

/** What the control plane needs of a breaker trip. */
export interface TripNotice {
  readonly tripId: string;
  readonly workspaceId: string;
  readonly windowSeconds: number;
  readonly failureCount: number;
  readonly tripTime: Date;
  /** routeVersion: the route version the dispatcher saw when it decided; 0 from a dispatcher that did not say. */
  readonly webhooks: readonly { readonly webhookId: string; readonly lastError: string; readonly routeVersion: number }[];
}

export interface WorkspaceInput {
  readonly id: string;
  readonly name: string;
  readonly plan: PlanName | undefined;
  readonly notificationEmails: readonly string[];
}

export interface WebhookInput {
  readonly name: string;
  readonly url: string;
  readonly eventTypes: readonly string[];
  readonly headers: Readonly<Record<string, string>>;
  /** Deliveries per second; 0 or absent means no limit. */
  readonly rateLimit?: number;
  /** Endpoint authentication; absent (or without a method) means none. Write-only. */
  readonly auth?: EndpointAuthInput | undefined;
}

export type WebhookField = keyof WebhookInput;

/** A webhook's endpoint credentials as stored: the kind in clear, the credentials sealed. */
interface SealedAuth {
  authKind: EndpointCredentials['kind'] | null;
  authSealed: Buffer | null;
}

function checkName(name: string, field: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0 || trimmed.length > 200) throw invalidArgument(field, 'must be 1-200 characters');
  return trimmed;
}

/** The URL policy, then what the host resolves to: a name that only reaches our network is refused now rather than at every attempt. */
async function checkUrl(url: string, policy: UrlPolicy, resolve: HostResolver, timeoutMs: number, field = 'url'): Promise<string> {
  const verdict = checkEndpointUrl(url, policy);
  if (!verdict.ok) throw invalidArgument(field, verdict.reason);
  const resolved = await checkEndpointResolution(verdict.url, policy, resolve, timeoutMs);
  if (!resolved.ok) throw invalidArgument(field, resolved.reason);
  return verdict.url.toString();
}

function encodeCursor(id: string): string {
  return Buffer.from(id).toString('base64url');
}

function decodeCursor(token: string): string {
  const id = Buffer.from(token, 'base64url').toString('utf8');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw invalidArgument('page_token', 'is not a token from a previous response');
  return id;
}

export class ControlPlane {
  constructor(
    private readonly orm: MikroORM,
    private readonly routes: RoutePublisher,
    private readonly secrets: SecretBox,
    private readonly settings: ControlPlaneSettings,
  ) {}

  private em(): EntityManager {
    return this.orm.em.fork();
  }

  maskedSecret(webhook: Webhook): string {
    return maskSecret(this.secrets.open(webhook.secretSealed));
  }

  async upsertWorkspace(input: WorkspaceInput, actor: Actor = unattributed): Promise<{ workspace: Workspace; created: boolean }> {
    const id = checkWorkspaceId(input.id, 'workspace.id');
    const name = checkName(input.name, 'workspace.name');
    if (!input.plan) throw invalidArgument('workspace.plan', 'choose one of STARTER, GROWTH, ADVANCED, ENTERPRISE');
    if (input.notificationEmails.length > 20) throw invalidArgument('workspace.notification_emails', 'at most 20 addresses');
    for (const email of input.notificationEmails) {
      if (!emailPattern.test(email) || email.length > 254) throw invalidArgument('workspace.notification_emails', `"${email.slice(0, 80)}" is not an email address`);
    }
    const plan = input.plan;
    const { workspace, created, planDisabled } = await this.em().transactional(async (em) => {
      let workspace = await em.findOne(WorkspaceEntity, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      const created = !workspace;
      workspace ??= em.create(WorkspaceEntity, { id, name, plan, notificationEmails: [] });
      workspace.name = name;
      workspace.plan = plan;
      workspace.notificationEmails = [...new Set(input.notificationEmails)];
      let planDisabled: Webhook[] = [];
      // A plan without webhooks switches them off but keeps their configuration for a later upgrade.
      if (!plansWithWebhooks.has(plan)) {
        planDisabled = await em.find(WebhookEntity, { workspace: id, status: 'active' });
        const now = new Date();
        for (const webhook of planDisabled) {
          webhook.status = 'disabled';
          webhook.disabledReason = 'plan';
          webhook.disabledDetail = `the workspace moved to plan ${plan}, which does not include webhooks`;
          webhook.disabledAt = now;
        }
      }
      await em.flush();
      await recordActivity(em, planDisabled.map((webhook) => ({
        workspaceId: id, webhookId: webhook.id, webhookName: webhook.name, kind: 'disabled_by_plan', actor: { ...systemActor('plan'), tokenName: actor.tokenName }, details: { plan },
      })));
      return { workspace, created, planDisabled };
    });
    await this.routes.publishAfterCommit(`workspace ${id}`, async () => {
      await this.routes.putWorkspace(workspace);
      for (const webhook of planDisabled) await this.routes.putWebhook(webhook, id);
    });
    return { workspace, created };
  }

  async getWorkspace(workspaceId: string): Promise<Workspace> {
    checkWorkspaceId(workspaceId);
    const workspace = await this.em().findOne(WorkspaceEntity, { id: workspaceId });
    if (!workspace) throw notFound(`workspace "${workspaceId}"`);
    return workspace;
  }

  async createWebhook(workspaceId: string, input: WebhookInput, actor: Actor = unattributed): Promise<{ webhook: Webhook; secret: string }> {
    checkWorkspaceId(workspaceId);
    const name = checkName(input.name, 'name');
    const url = await this.checkUrl(input.url, 'url');
    const eventTypes = checkEventTypes(input.eventTypes);
    // The placeholder answers show for a value is no value to store: a copy of another webhook's answer.
    const headers = keepRedactedHeaders(checkCustomHeaders(input.headers), {});
    const rateLimit = checkRateLimit(input.rateLimit ?? 0);
    const auth = this.sealAuth(await this.checkAuth(input.auth, 'auth'));
    const secret = generateSigningSecret();
    let webhook: Webhook;
    try {
      webhook = await this.em().transactional(async (em) => {
        // Locking the workspace row serialises creates per workspace, so the limit holds under concurrency.
        const workspace = await em.findOne(WorkspaceEntity, { id: workspaceId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
        if (!workspace) throw notFound(`workspace "${workspaceId}"`);
        this.requireWebhookPlan(workspace);
        const count = await em.count(WebhookEntity, { workspace: workspaceId });
        if (count >= this.settings.maxWebhooksPerWorkspace) {
          throw failedPrecondition(`workspace "${workspaceId}" already has ${count} webhooks, the limit is ${this.settings.maxWebhooksPerWorkspace}; delete one first`);
        }
        const webhook = em.create(WebhookEntity, {
          id: newId('wh'),
          workspace,
          name,
          url,
          eventTypes,
          headers,
          status: 'active',
          secretSealed: this.secrets.seal(secret),
          rateLimit,
          ...auth,
        });
        await em.flush();
        await recordActivity(em, [{ workspaceId, webhookId: webhook.id, webhookName: name, kind: 'created', actor }]);
        return webhook;
      });
    } catch (error) {
      if (error instanceof UniqueConstraintViolationException) throw alreadyExists(`a webhook named "${name}" in workspace "${workspaceId}"`);
      throw error;
    }
    await this.routes.publishAfterCommit(`webhook ${webhook.id}`, () => this.routes.putWebhook(webhook, workspaceId));
    return { webhook, secret };
  }

  async getWebhook(workspaceId: string, webhookId: string): Promise<Webhook> {
    return this.findWebhook(this.em(), workspaceId, webhookId);
  }

  async listWebhooks(
    workspaceId: string,
    options: { pageSize: number; pageToken: string; status: 'active' | 'disabled' | undefined },
  ): Promise<{ webhooks: Webhook[]; nextPageToken: string }> {
    checkWorkspaceId(workspaceId);
    if (options.pageSize < 0 || options.pageSize > maxPageSize) throw invalidArgument('page_size', `must be between 0 and ${maxPageSize}`);
    const limit = options.pageSize || defaultPageSize;
    const em = this.em();
    const workspace = await em.findOne(WorkspaceEntity, { id: workspaceId });
    if (!workspace) throw notFound(`workspace "${workspaceId}"`);
    const after = options.pageToken ? decodeCursor(options.pageToken) : undefined;
    // Ids are time-sortable, so id order is creation order and a stable cursor.
    const webhooks = await em.find(
      WebhookEntity,
      { workspace: workspaceId, ...(options.status ? { status: options.status } : {}), ...(after ? { id: { $gt: after } } : {}) },
      { orderBy: { id: 'asc' }, limit: limit + 1 },
    );
    const more = webhooks.length > limit;
    const page = webhooks.slice(0, limit);
    return { webhooks: page, nextPageToken: more ? encodeCursor(page[page.length - 1]!.id) : '' };
  }

  async updateWebhook(workspaceId: string, webhookId: string, fields: readonly WebhookField[], input: WebhookInput, expectedVersion: number, actor: Actor = unattributed): Promise<Webhook> {
    if (fields.length === 0) throw invalidArgument('update_mask', 'name at least one of name, url, event_types, headers, rate_limit, auth');
    const changes: { name?: string; url?: string; eventTypes?: string[]; headers?: Record<string, string>; rateLimit?: number | null } & Partial<SealedAuth> = {};
    for (const f of fields) {
      if (f === 'name') changes.name = checkName(input.name, 'webhook.name');
      else if (f === 'url') changes.url = await this.checkUrl(input.url, 'webhook.url');
      else if (f === 'eventTypes') changes.eventTypes = checkEventTypes(input.eventTypes, 'webhook.event_types');
      else if (f === 'headers') changes.headers = checkCustomHeaders(input.headers, 'webhook.headers');
      else if (f === 'rateLimit') changes.rateLimit = checkRateLimit(input.rateLimit ?? 0, 'webhook.rate_limit');
      else if (f === 'auth') Object.assign(changes, this.sealAuth(await this.checkAuth(input.auth, 'webhook.auth')));
    }
    let webhook: Webhook;
    try {
      webhook = await this.em().transactional(async (em) => {
        const webhook = await this.findWebhook(em, workspaceId, webhookId);
        if (expectedVersion !== 0 && webhook.version !== expectedVersion) {
          throw aborted(`webhook "${webhookId}" is at version ${webhook.version}, not ${expectedVersion}; read it again and reapply the change`);
        }
        if (changes.url !== undefined) checkAuthStaysWithOrigin(webhook.url, changes.url, webhook.authKind !== null, fields.includes('auth'));
        // Values are write-only (answers show a placeholder): one sent back as the placeholder is kept.
        if (changes.headers !== undefined) changes.headers = keepRedactedHeaders(changes.headers, webhook.headers, 'webhook.headers');
        em.assign(webhook, changes);
        await em.flush();
        const edited = fields.filter((f): f is Exclude<WebhookField, 'auth'> => f !== 'auth').map((f) => apiFieldNames[f]);
        await recordActivity(em, [
          ...(edited.length > 0 ? [{ workspaceId, webhookId, webhookName: webhook.name, kind: 'edited' as const, actor, details: { fields: [...new Set(edited)] } }] : []),
          ...(fields.includes('auth') ? [{ workspaceId, webhookId, webhookName: webhook.name, kind: 'auth_changed' as const, actor, details: { authKind: webhook.authKind } }] : []),
        ]);
        return webhook;
      });
    } catch (error) {
      if (error instanceof UniqueConstraintViolationException) throw alreadyExists(`a webhook named "${changes.name}" in workspace "${workspaceId}"`);
      if (error instanceof OptimisticLockError) throw aborted(`webhook "${webhookId}" was changed at the same time; read it again and reapply the change`);
      throw error;
    }
    await this.routes.publishAfterCommit(`webhook ${webhookId}`, () => this.routes.putWebhook(webhook, workspaceId));
    return webhook;
  }

  async deleteWebhook(workspaceId: string, webhookId: string, actor: Actor = unattributed): Promise<void> {
    await this.em().transactional(async (em) => {
      const webhook = await this.findWebhook(em, workspaceId, webhookId, LockMode.PESSIMISTIC_WRITE);
      em.remove(webhook);
      await em.flush();
      await recordActivity(em, [{ workspaceId, webhookId, webhookName: webhook.name, kind: 'deleted', actor }]);
    });
    await this.routes.publishAfterCommit(`webhook ${webhookId}`, () => this.routes.removeWebhook(workspaceId, webhookId));
  }

  async activateWebhook(workspaceId: string, webhookId: string, actor: Actor = unattributed): Promise<Webhook> {
    const webhook = await this.em().transactional(async (em) => {
      // Locked: a breaker trip or another replica changing the row at the same moment waits its turn
      // instead of failing this call on the row's version.
      const webhook = await this.findWebhook(em, workspaceId, webhookId, LockMode.PESSIMISTIC_WRITE);
      this.requireWebhookPlan(await em.findOneOrFail(WorkspaceEntity, { id: workspaceId }));
      const wasDisabled = webhook.status !== 'active';
      webhook.status = 'active';
      webhook.disabledReason = null;
      webhook.disabledDetail = null;
      webhook.disabledAt = null;
      await em.flush();
      // Activating an active webhook changes nothing, and is not recorded.
      if (wasDisabled) await recordActivity(em, [{ workspaceId, webhookId, webhookName: webhook.name, kind: 'activated', actor }]);
      return webhook;
    });
    await this.routes.publishAfterCommit(`webhook ${webhookId}`, () => this.routes.putWebhook(webhook, workspaceId));
    // Old failures must not trip the breaker again: the webhook starts with a clean slate.
    await this.settings.forgetFailures(workspaceId, webhookId);
    return webhook;
  }

  /**
   * Disables the webhooks a breaker trip names (those still active), with the reason people see. Runs
   * again harmlessly for a trip that was already applied. A webhook whose row is newer than the route the
   * trip was decided on (activated, or its URL fixed, since) is left alone: a late trip must not undo a
   * later action.
   */
  async applyTrip(trip: TripNotice): Promise<Webhook[]> {
    const minutes = Math.round(trip.windowSeconds / 60);
    const disabled = await this.em().transactional(async (em) => {
      const changed: Webhook[] = [];
      for (const tripped of trip.webhooks) {
        const webhook = await em.findOne(WebhookEntity, { id: tripped.webhookId, workspace: trip.workspaceId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
        if (!webhook || webhook.status !== 'active') continue;
        if (tripped.routeVersion > 0 && webhook.version > tripped.routeVersion) continue;
        webhook.status = 'disabled';
        webhook.disabledReason = 'failure_threshold';
        webhook.disabledDetail = `automatic: ${trip.failureCount} failed attempts in ${minutes} minute${minutes === 1 ? '' : 's'}`;
        webhook.disabledAt = trip.tripTime;
        webhook.lastError = tripped.lastError;
        changed.push(webhook);
      }
      await em.flush();
      // Only what this transaction turned off: a replica applying the same trip again records nothing.
      await recordActivity(em, changed.map((webhook) => ({
        workspaceId: trip.workspaceId, webhookId: webhook.id, webhookName: webhook.name, kind: 'disabled_by_breaker', actor: systemActor('breaker'),
        details: { failureCount: trip.failureCount, windowSeconds: trip.windowSeconds, lastError: webhook.lastError ?? '' },
      })));
      return changed;
    });
    await this.routes.publishAfterCommit(`trip ${trip.tripId}`, async () => {
      for (const webhook of disabled) await this.routes.putWebhook(webhook, trip.workspaceId);
    });
    return disabled;
  }

  async deactivateWebhook(workspaceId: string, webhookId: string, actor: Actor = unattributed): Promise<Webhook> {
    const webhook = await this.em().transactional(async (em) => {
      const webhook = await this.findWebhook(em, workspaceId, webhookId, LockMode.PESSIMISTIC_WRITE);
      if (webhook.status === 'active') {
        webhook.status = 'disabled';
        webhook.disabledReason = 'manual';
        webhook.disabledDetail = 'deactivated by a workspace admin';
        webhook.disabledAt = new Date();
        await em.flush();
        await recordActivity(em, [{ workspaceId, webhookId, webhookName: webhook.name, kind: 'deactivated', actor }]);
      }
      return webhook;
    });
    await this.routes.publishAfterCommit(`webhook ${webhookId}`, () => this.routes.putWebhook(webhook, workspaceId));
    return webhook;
  }

  async rotateSecret(workspaceId: string, webhookId: string, actor: Actor = unattributed): Promise<{ webhook: Webhook; secret: string; previousExpiresAt: Date }> {
    const secret = generateSigningSecret();
    const previousExpiresAt = new Date(Date.now() + this.settings.secretRotationGraceMs);
    const webhook = await this.em().transactional(async (em) => {
      const webhook = await this.findWebhook(em, workspaceId, webhookId, LockMode.PESSIMISTIC_WRITE);
      webhook.previousSecretSealed = webhook.secretSealed;
      webhook.previousSecretExpiresAt = previousExpiresAt;
      webhook.secretSealed = this.secrets.seal(secret);
      await em.flush();
      await recordActivity(em, [{ workspaceId, webhookId, webhookName: webhook.name, kind: 'secret_rotated', actor }]);
      return webhook;
    });
    await this.routes.publishAfterCommit(`webhook ${webhookId}`, () => this.routes.putWebhook(webhook, workspaceId));
    return { webhook, secret, previousExpiresAt };
  }

  async reconcileRoutes(): Promise<ReconcileReport> {
    return this.routes.reconcile();
  }

  /** The endpoint authentication, with its token URL (if any) checked like an endpoint URL, DNS included. */
  private async checkAuth(input: EndpointAuthInput | undefined, field: string): Promise<EndpointCredentials | null> {
    const credentials = checkEndpointAuth(input, this.settings.urlPolicy, field);
    if (credentials?.kind === 'oauth') return { ...credentials, tokenUrl: await this.checkUrl(credentials.tokenUrl, `${field}.oauth_client_credentials.token_url`) };
    return credentials;
  }

  private sealAuth(credentials: EndpointCredentials | null): SealedAuth {
    if (!credentials) return { authKind: null, authSealed: null };
    return { authKind: credentials.kind, authSealed: this.secrets.seal(encodeEndpointCredentials(credentials)) };
  }

  private checkUrl(url: string, field: string): Promise<string> {
    return checkUrl(url, this.settings.urlPolicy, this.settings.resolveHost, this.settings.hostLookupTimeoutMs ?? defaultHostLookupTimeoutMs, field);
  }

  private requireWebhookPlan(workspace: Workspace): void {
    if (!plansWithWebhooks.has(workspace.plan)) {
      throw failedPrecondition(`plan ${workspace.plan} of workspace "${workspace.id}" does not include webhooks; they are available on ADVANCED and ENTERPRISE`);
    }
  }

  private async findWebhook(em: EntityManager, workspaceId: string, webhookId: string, lockMode?: LockMode): Promise<Webhook> {
    checkWorkspaceId(workspaceId);
    checkResourceId(webhookId, 'webhook_id');
    // Scoped by workspace: another workspace's webhook is indistinguishable from a missing one.
    const webhook = await em.findOne(WebhookEntity, { id: webhookId, workspace: workspaceId }, lockMode ? { lockMode } : {});
    if (!webhook) throw notFound(`webhook "${webhookId}" in workspace "${workspaceId}"`);
    return webhook;
  }
}

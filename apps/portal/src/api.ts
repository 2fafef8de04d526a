// The portal's HTTP API for its own page: each route turns a browser request into calls of the gRPC
// services, always for the workspace of the caller's session; the services validate inputs as for every
// client. Answers are the API messages as JSON: camelCase fields, enum names, RFC 3339 times.
import type { WebhooksClient } from '@webhooks/client';
import {
  ActivityKind, ActorKind, CreateWebhookRequest, DeliveryStatus, DisabledReason, Plan, Webhook, WebhookStatus, type Delivery, type WebhookActivity, type Workspace,
} from '@webhooks/contracts';
import { invalidArgument } from '@webhooks/domain';
import { authKindName, endpointAuthOf, rateLimitOf } from './endpoint-options.js';
import type { PortalScope } from './session.js';

export interface ApiRequest {
  readonly method: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly body: Record<string, unknown>;
  readonly scope: PortalScope;
}

type Handler = (client: WebhooksClient, request: ApiRequest) => Promise<unknown>;

interface Route {
  readonly method: string;
  readonly pattern: RegExp;
  readonly names: readonly string[];
  readonly name: string;
  readonly handler: Handler;
}

/** "/webhooks/:webhookId/test" → a pattern whose groups are the named parts (ids: letters, digits, _ and -). */
function route(method: string, path: string, handler: Handler): Route {
  const names: string[] = [];
  const pattern = new RegExp(`^${path.replace(/:(\w+)/g, (_m, name: string) => (names.push(name), '([A-Za-z0-9_-]{1,128})'))}$`);
  return { method, pattern, names, name: `${method} ${path}`, handler };
}

const text = (body: Record<string, unknown>, field: string): string => {
  const value = body[field];
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw invalidArgument(field, 'must be text');
  return value;
};
const textList = (body: Record<string, unknown>, field: string): string[] => {
  const value = body[field] ?? [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw invalidArgument(field, 'must be a list of text');
  return value as string[];
};
const headerMap = (body: Record<string, unknown>): Record<string, string> => {
  const value = body.headers ?? {};
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value as object).some((v) => typeof v !== 'string')) throw invalidArgument('headers', 'must map header names to text');
  return value as Record<string, string>;
};
const time = (raw: string | null, field: string): Date | undefined => {
  if (!raw) return undefined;
  const date = new Date(raw);
  if (Number.isNaN(date.getTime())) throw invalidArgument(field, 'is not a time');
  return date;
};
const statusNames: Record<string, DeliveryStatus> = {
  pending: DeliveryStatus.DELIVERY_STATUS_PENDING,
  retrying: DeliveryStatus.DELIVERY_STATUS_RETRYING,
  succeeded: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED,
  dropped: DeliveryStatus.DELIVERY_STATUS_DROPPED,
};

/** Every webhook of the workspace (at most 100 per page, as many pages as there are). */
async function allWebhooks(client: WebhooksClient, workspaceId: string): Promise<Webhook[]> {
  const webhooks: Webhook[] = [];
  let pageToken = '';
  do {
    const page = await client.listWebhooks({ workspaceId, pageSize: 100, pageToken, status: WebhookStatus.WEBHOOK_STATUS_UNSPECIFIED });
    webhooks.push(...page.webhooks);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return webhooks;
}

// The messages as they are (every field, dates become RFC 3339 in JSON), with enums by name.
// auth is write-only (never in an answer): the page gets authKind alone.
const webhookJson = ({ auth: _auth, ...w }: Webhook) => ({
  ...w,
  authKind: authKindName(w.authKind),
  status: WebhookStatus[w.status],
  disabled: w.disabled ? { ...w.disabled, reason: DisabledReason[w.disabled.reason] } : undefined,
});
const deliveryJson = ({ body: _body, ...d }: Delivery) => ({ ...d, status: DeliveryStatus[d.status] });
const workspaceJson = (w: Workspace) => ({ ...w, plan: Plan[w.plan] });
const activityJson = (a: WebhookActivity) => ({
  ...a,
  kind: ActivityKind[a.kind].replace('ACTIVITY_KIND_', '').toLowerCase(),
  actor: { ...a.actor!, kind: ActorKind[a.actor!.kind].replace('ACTOR_KIND_', '').toLowerCase() },
  plan: a.plan ? Plan[a.plan].replace('PLAN_', '') : '',
  authKind: authKindName(a.authKind),
  windowSeconds: a.window?.seconds ?? 0,
  window: undefined,
});

const webhookIdOf = (request: ApiRequest) => ({ workspaceId: request.scope.workspaceId, webhookId: request.params.webhookId! });

export const routes: readonly Route[] = [
  route('GET', '/session', async (client, { scope }) => {
    const { workspace } = await client.getWorkspace({ workspaceId: scope.workspaceId });
    return { workspace: workspaceJson(workspace!), operator: scope.operator, expiresAt: scope.expiresAt?.toISOString() ?? null };
  }),
  route('GET', '/event-types', async (client) => ({ eventTypes: (await client.listEventTypes()).eventTypes })),
  route('GET', '/breaker', async (client, { scope }) => {
    const state = await client.getBreakerState({ workspaceId: scope.workspaceId });
    return { failureCount: state.failureCount, threshold: state.threshold, windowSeconds: state.window?.seconds ?? 0 };
  }),
  route('GET', '/webhooks', async (client, { scope }) => ({ webhooks: (await allWebhooks(client, scope.workspaceId)).map(webhookJson) })),
  route('POST', '/webhooks', async (client, { scope, body }) => {
    const rateLimit = rateLimitOf(body);
    const response = await client.createWebhook(CreateWebhookRequest.fromPartial({
      workspaceId: scope.workspaceId, name: text(body, 'name'), url: text(body, 'url'), eventTypes: textList(body, 'eventTypes'), headers: headerMap(body),
      rateLimit: rateLimit || undefined, auth: endpointAuthOf(body) ?? undefined,
    }));
    return { webhook: webhookJson(response.webhook!), signingSecret: response.signingSecret };
  }),
  route('PATCH', '/webhooks/:webhookId', async (client, request) => {
    const { body } = request;
    const mask = (['name', 'url', 'eventTypes', 'headers', 'rateLimit', 'auth'] as const).filter((field) => body[field] !== undefined);
    const paths: Record<(typeof mask)[number], string> = { name: 'name', url: 'url', eventTypes: 'event_types', headers: 'headers', rateLimit: 'rate_limit', auth: 'auth' };
    const response = await client.updateWebhook({
      workspaceId: request.scope.workspaceId,
      // rate_limit 0 and an unset auth under their mask paths remove them.
      webhook: Webhook.fromPartial({
        id: request.params.webhookId!, name: text(body, 'name'), url: text(body, 'url'), eventTypes: body.eventTypes === undefined ? [] : textList(body, 'eventTypes'), headers: body.headers === undefined ? {} : headerMap(body),
        rateLimit: rateLimitOf(body), auth: endpointAuthOf(body) ?? undefined,
      }),
      updateMask: mask.map((field) => paths[field]),
      expectedVersion: typeof body.expectedVersion === 'number' ? body.expectedVersion : 0,
    });
    return { webhook: webhookJson(response.webhook!) };
  }),
  route('DELETE', '/webhooks/:webhookId', async (client, request) => {
    await client.deleteWebhook(webhookIdOf(request));
    return {};
  }),
  route('POST', '/webhooks/:webhookId/activate', async (client, request) => ({ webhook: webhookJson((await client.activateWebhook(webhookIdOf(request))).webhook!) })),
  route('POST', '/webhooks/:webhookId/deactivate', async (client, request) => ({ webhook: webhookJson((await client.deactivateWebhook(webhookIdOf(request))).webhook!) })),
  route('POST', '/webhooks/:webhookId/rotate-secret', async (client, request) => {
    const response = await client.rotateWebhookSecret(webhookIdOf(request));
    return { webhook: webhookJson(response.webhook!), signingSecret: response.signingSecret, previousSecretExpireTime: response.previousSecretExpireTime?.toISOString() ?? null };
  }),
  route('POST', '/webhooks/:webhookId/test', async (client, request) => {
    const response = await client.sendTestEvent({ ...webhookIdOf(request), eventType: text(request.body, 'eventType') });
    return { eventId: response.eventId, delivery: deliveryJson(response.delivery!) };
  }),
  route('POST', '/webhooks/:webhookId/recover', async (client, request) => {
    const since = time(text(request.body, 'since'), 'since');
    const response = await client.recoverDeliveries({ ...webhookIdOf(request), since });
    return { queuedCount: response.queuedCount };
  }),
  route('GET', '/webhooks/:webhookId/stats', async (client, request) => ({ hours: (await client.getWebhookStats(webhookIdOf(request))).hours.map((h) => ({ ...h, hourStart: h.hourStart?.toISOString() })) })),
  route('GET', '/health', async (client, { scope }) => ({ webhooks: (await client.listWebhookHealth({ workspaceId: scope.workspaceId })).webhooks })),
  route('GET', '/activity', async (client, { scope, query }) => {
    const response = await client.listWebhookActivity({
      workspaceId: scope.workspaceId,
      webhookId: query.get('webhookId') ?? '',
      startTime: undefined,
      endTime: undefined,
      pageSize: 50,
      pageToken: query.get('pageToken') ?? '',
    });
    return { activity: response.activity.map(activityJson), nextPageToken: response.nextPageToken };
  }),
  route('GET', '/deliveries', async (client, { scope, query }) => {
    const status = query.get('status') ?? '';
    if (status && !(status in statusNames)) throw invalidArgument('status', 'must be pending, retrying, succeeded or dropped');
    const response = await client.listDeliveries({
      workspaceId: scope.workspaceId,
      webhookId: query.get('webhookId') ?? '',
      eventType: query.get('eventType') ?? '',
      status: status ? statusNames[status]! : DeliveryStatus.DELIVERY_STATUS_UNSPECIFIED,
      startTime: time(query.get('from'), 'from'),
      endTime: time(query.get('to'), 'to'),
      pageSize: 50,
      pageToken: query.get('pageToken') ?? '',
    });
    return { deliveries: response.deliveries.map(deliveryJson), nextPageToken: response.nextPageToken };
  }),
  route('GET', '/deliveries/:deliveryId', async (client, { scope, params }) => {
    const { delivery } = await client.getDelivery({ workspaceId: scope.workspaceId, deliveryId: params.deliveryId! });
    // The body as the endpoint received it (JSON text), not as base64.
    return { delivery: { ...deliveryJson(delivery!), body: delivery!.body.toString('utf8') } };
  }),
  route('POST', '/deliveries/:deliveryId/retry', async (client, { scope, params }) => ({ delivery: deliveryJson((await client.retryDelivery({ workspaceId: scope.workspaceId, deliveryId: params.deliveryId! })).delivery!) })),
];

/** The route for a method and path below /api, with the path's named parts. */
export function findRoute(method: string, path: string): { route: Route; params: Record<string, string> } | 'method-not-allowed' | undefined {
  let pathMatched = false;
  for (const candidate of routes) {
    const match = candidate.pattern.exec(path);
    if (!match) continue;
    pathMatched = true;
    if (candidate.method !== method) continue;
    return { route: candidate, params: Object.fromEntries(candidate.names.map((name, i) => [name, match[i + 1]!])) };
  }
  return pathMatched ? 'method-not-allowed' : undefined;
}

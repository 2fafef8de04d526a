// SubscriptionService over gRPC: authenticate, scope to the workspace, translate to ControlPlane calls.
import {
  DisabledReason,
  Plan,
  WebhookStatus,
  type SubscriptionServiceServer,
  type Webhook as WebhookMessage,
  type Workspace as WorkspaceMessage,
  type DeliveryLogServiceServer,
  DeliveryStatus,
  type Delivery as DeliveryMessage,
} from '@webhooks/contracts';
import { describeEventTypes, exampleEvent, invalidArgument, redactHeaders } from '@webhooks/domain';
import type { streamHandlers, unaryHandlers } from '@webhooks/grpc-kit';
import { actorOf, activityRpcs, type ActivityReader } from './activity/grpc.js';
import type { DeliveryLog, DeliveryView, RetryTimes } from './delivery-log/delivery-log.js';
import type { ControlPlane, WebhookField } from './control-plane.js';
import type { BreakerReport, PortalLink } from './portal.js';
import { planNames, type Attempt, type DeliveryStatusName, type PlanName, type Webhook, type Workspace } from './persistence/entities.js';
import { authKindToProto, planToProto } from './routes.js';

type Unary = ReturnType<typeof unaryHandlers>;
type Stream = ReturnType<typeof streamHandlers>;

const disabledReasons = { manual: DisabledReason.DISABLED_REASON_MANUAL, plan: DisabledReason.DISABLED_REASON_PLAN, failure_threshold: DisabledReason.DISABLED_REASON_FAILURE_THRESHOLD } as const;
const maskPaths: Record<string, WebhookField> = { name: 'name', url: 'url', event_types: 'eventTypes', headers: 'headers', rate_limit: 'rateLimit', auth: 'auth' };

function planFromProto(plan: Plan): PlanName | undefined {
  const name = Plan[plan]?.replace(/^PLAN_/, '');
  return planNames.find((p) => p === name);
}

function workspaceMessage(workspace: Workspace): WorkspaceMessage {
  return {
    id: workspace.id,
    name: workspace.name,
    plan: planToProto(workspace.plan),
    notificationEmails: workspace.notificationEmails,
    createTime: workspace.createdAt,
    updateTime: workspace.updatedAt,
  };
}

/** The portal's RPCs: session links and the breaker's state (see portal.ts). */
export interface PortalFeatures {
  readonly link: (workspaceId: string, ttlMs: number) => PortalLink;
  readonly breaker: (workspaceId: string) => Promise<BreakerReport>;
}

const durationMs = (d: { seconds: number; nanos: number } | undefined) => (d ? d.seconds * 1000 + Math.round(d.nanos / 1e6) : 0);

export function subscriptionService(controlPlane: ControlPlane, unary: Unary, portal: PortalFeatures, stream: Stream, activity: ActivityReader): SubscriptionServiceServer {
  // The catalog never changes while the service runs: rendered once.
  const catalog = describeEventTypes((type) => exampleEvent(type)).map((entry) => ({
    name: entry.name,
    description: entry.description,
    dataSchemaJson: JSON.stringify(entry.dataSchema),
    exampleBodyJson: entry.exampleBody,
  }));

  const webhookMessage = (webhook: Webhook): WebhookMessage => ({
    id: webhook.id,
    workspaceId: webhook.workspace.id,
    name: webhook.name,
    url: webhook.url,
    eventTypes: webhook.eventTypes,
    // Write-only values: the names and a placeholder (libs/domain headers.ts).
    headers: redactHeaders(webhook.headers),
    status: webhook.status === 'active' ? WebhookStatus.WEBHOOK_STATUS_ACTIVE : WebhookStatus.WEBHOOK_STATUS_DISABLED,
    disabled:
      webhook.status === 'disabled'
        ? {
            reason: webhook.disabledReason ? disabledReasons[webhook.disabledReason] : DisabledReason.DISABLED_REASON_UNSPECIFIED,
            detail: webhook.disabledDetail ?? '',
            disableTime: webhook.disabledAt ?? undefined,
            lastError: webhook.lastError ?? '',
          }
        : undefined,
    maskedSecret: controlPlane.maskedSecret(webhook),
    version: webhook.version,
    rateLimit: webhook.rateLimit ?? undefined,
    // Credentials are write-only: only which kind is set is ever answered.
    auth: undefined,
    authKind: webhook.authKind ? authKindToProto[webhook.authKind] : 0,
    createTime: webhook.createdAt,
    updateTime: webhook.updatedAt,
  });

  return {
    upsertWorkspace: unary('UpsertWorkspace', async (request, context) => {
      const { caller } = context;
      const input = request.workspace;
      if (!input) throw invalidArgument('workspace', 'is required');
      caller.authorize(input.id);
      const { workspace, created } = await controlPlane.upsertWorkspace({
        id: input.id,
        name: input.name,
        plan: planFromProto(input.plan),
        notificationEmails: input.notificationEmails,
      }, actorOf(context));
      return { workspace: workspaceMessage(workspace), created };
    }),

    getWorkspace: unary('GetWorkspace', async (request, { caller }) => {
      caller.authorize(request.workspaceId);
      return { workspace: workspaceMessage(await controlPlane.getWorkspace(request.workspaceId)) };
    }),

    createWebhook: unary('CreateWebhook', async (request, context) => {
      const { caller } = context;
      caller.authorize(request.workspaceId);
      const { webhook, secret } = await controlPlane.createWebhook(request.workspaceId, request, actorOf(context));
      return { webhook: webhookMessage(webhook), signingSecret: secret };
    }),

    getWebhook: unary('GetWebhook', async (request, { caller }) => {
      caller.authorize(request.workspaceId);
      return { webhook: webhookMessage(await controlPlane.getWebhook(request.workspaceId, request.webhookId)) };
    }),

    listWebhooks: unary('ListWebhooks', async (request, { caller }) => {
      caller.authorize(request.workspaceId);
      const statusFilter =
        request.status === WebhookStatus.WEBHOOK_STATUS_ACTIVE ? 'active' : request.status === WebhookStatus.WEBHOOK_STATUS_DISABLED ? 'disabled' : undefined;
      const page = await controlPlane.listWebhooks(request.workspaceId, { pageSize: request.pageSize, pageToken: request.pageToken, status: statusFilter });
      return { webhooks: page.webhooks.map(webhookMessage), nextPageToken: page.nextPageToken };
    }),

    updateWebhook: unary('UpdateWebhook', async (request, context) => {
      const { caller } = context;
      caller.authorize(request.workspaceId);
      if (!request.webhook) throw invalidArgument('webhook', 'is required, with its id and the fields to change');
      const fields = (request.updateMask ?? []).map((path) => {
        const field = maskPaths[path];
        if (!field) throw invalidArgument('update_mask', `"${path}" cannot be updated; use name, url, event_types, headers, rate_limit or auth`);
        return field;
      });
      const webhook = await controlPlane.updateWebhook(request.workspaceId, request.webhook.id, fields, request.webhook, request.expectedVersion, actorOf(context));
      return { webhook: webhookMessage(webhook) };
    }),

    deleteWebhook: unary('DeleteWebhook', async (request, context) => {
      const { caller } = context;
      caller.authorize(request.workspaceId);
      await controlPlane.deleteWebhook(request.workspaceId, request.webhookId, actorOf(context));
      return {};
    }),

    activateWebhook: unary('ActivateWebhook', async (request, context) => {
      const { caller } = context;
      caller.authorize(request.workspaceId);
      return { webhook: webhookMessage(await controlPlane.activateWebhook(request.workspaceId, request.webhookId, actorOf(context))) };
    }),

    deactivateWebhook: unary('DeactivateWebhook', async (request, context) => {
      const { caller } = context;
      caller.authorize(request.workspaceId);
      return { webhook: webhookMessage(await controlPlane.deactivateWebhook(request.workspaceId, request.webhookId, actorOf(context))) };
    }),

    rotateWebhookSecret: unary('RotateWebhookSecret', async (request, context) => {
      const { caller } = context;
      caller.authorize(request.workspaceId);
      const { webhook, secret, previousExpiresAt } = await controlPlane.rotateSecret(request.workspaceId, request.webhookId, actorOf(context));
      return { webhook: webhookMessage(webhook), signingSecret: secret, previousSecretExpireTime: previousExpiresAt };
    }),

    listEventTypes: unary('ListEventTypes', async () => ({ eventTypes: catalog })),

    ...activityRpcs(activity, unary, stream),

    createPortalSession: unary('CreatePortalSession', async (request, { caller }) => {
      caller.authorize(request.workspaceId);
      // The workspace must exist: a link to an empty portal would only confuse.
      await controlPlane.getWorkspace(request.workspaceId);
      const link = portal.link(request.workspaceId, durationMs(request.ttl));
      return { url: link.url, token: link.token, expireTime: link.expiresAt };
    }),

    getBreakerState: unary('GetBreakerState', async (request, { caller }) => {
      caller.authorize(request.workspaceId);
      await controlPlane.getWorkspace(request.workspaceId);
      const report = await portal.breaker(request.workspaceId);
      return { failureCount: report.failureCount, threshold: report.threshold, window: { seconds: Math.floor(report.windowMs / 1000), nanos: (report.windowMs % 1000) * 1e6 } };
    }),
  };
}

const deliveryStatuses: Record<DeliveryStatusName, DeliveryStatus> = {
  pending: DeliveryStatus.DELIVERY_STATUS_PENDING,
  retrying: DeliveryStatus.DELIVERY_STATUS_RETRYING,
  succeeded: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED,
  dropped: DeliveryStatus.DELIVERY_STATUS_DROPPED,
};

function deliveryMessage(delivery: DeliveryView, attempts: readonly Attempt[] = [], body: Buffer = Buffer.alloc(0), retry?: RetryTimes): DeliveryMessage {
  return {
    id: delivery.id,
    workspaceId: delivery.workspaceId,
    webhookId: delivery.webhookId,
    eventId: delivery.eventId,
    eventType: delivery.eventType,
    status: deliveryStatuses[delivery.status],
    dropReason: delivery.dropReason ?? '',
    attemptCount: delivery.attemptCount,
    createTime: delivery.createdAt,
    updateTime: delivery.updatedAt,
    retryOfDeliveryId: delivery.retryOfDeliveryId ?? '',
    attempts: attempts.map((a) => ({
      number: a.number,
      startTime: a.startTime,
      durationMs: a.durationMs,
      statusCode: a.statusCode,
      failureReason: a.failureReason,
      responseExcerpt: a.responseExcerpt,
      requestHeaders: a.requestHeaders,
    })),
    body,
    nextAttemptTime: retry?.nextAttemptAt,
    giveUpTime: retry?.giveUpAt,
  };
}

export function deliveryLogService(log: DeliveryLog, unary: Unary): DeliveryLogServiceServer {
  return {
    listDeliveries: unary('ListDeliveries', async (request, { caller }) => {
      caller.authorize(request.workspaceId);
      const status = (Object.entries(deliveryStatuses) as [DeliveryStatusName, DeliveryStatus][]).find(([, value]) => value === request.status)?.[0];
      const page = await log.list(
        request.workspaceId,
        { webhookId: request.webhookId || undefined, eventType: request.eventType || undefined, status, from: request.startTime, to: request.endTime },
        request.pageSize,
        request.pageToken,
      );
      const retrying = await log.retryTimes(page.deliveries);
      return { deliveries: page.deliveries.map((d) => deliveryMessage(d, [], undefined, retrying.get(d.id))), nextPageToken: page.nextPageToken };
    }),
    getDelivery: unary('GetDelivery', async (request, { caller }) => {
      caller.authorize(request.workspaceId);
      const { delivery, attempts, body, retry } = await log.get(request.workspaceId, request.deliveryId);
      return { delivery: deliveryMessage(delivery, attempts, body, retry) };
    }),
    retryDelivery: unary('RetryDelivery', async (request, { caller }) => {
      caller.authorize(request.workspaceId);
      return { delivery: deliveryMessage(await log.retry(request.workspaceId, request.deliveryId)) };
    }),
    sendTestEvent: unary('SendTestEvent', async (request, { caller }) => {
      caller.authorize(request.workspaceId);
      const delivery = await log.sendTest(request.workspaceId, request.webhookId, request.eventType);
      return { eventId: delivery.eventId, delivery: deliveryMessage(delivery) };
    }),
    recoverDeliveries: unary('RecoverDeliveries', async (request, context) => {
      context.caller.authorize(request.workspaceId);
      const { queued, deliveries } = await log.recover(request.workspaceId, request.webhookId, request.since, actorOf(context));
      return { queuedCount: queued, deliveries: deliveries.slice(0, 100).map((d) => deliveryMessage(d)) };
    }),
    getWebhookStats: unary('GetWebhookStats', async (request, { caller }) => {
      caller.authorize(request.workspaceId);
      return { hours: await log.hourlyStats(request.workspaceId, request.webhookId) };
    }),
    listWebhookHealth: unary('ListWebhookHealth', async (request, { caller }) => {
      caller.authorize(request.workspaceId);
      const webhooks = await log.health(request.workspaceId);
      return {
        webhooks: webhooks.map((h) => ({
          webhookId: h.webhookId,
          lastFailure: h.lastFailure,
          attempts24h: h.attempts24h,
          succeeded24h: h.succeeded24h,
          retryingCount: h.retrying,
          nextAttemptTime: h.nextAttemptAt,
        })),
      };
    }),
  };
}

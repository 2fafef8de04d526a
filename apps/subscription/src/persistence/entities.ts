// The control plane's tables. Only the subscription service touches PostgreSQL.
import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { endpointAuthKinds } from '@webhooks/domain';

export const planNames = ['STARTER', 'GROWTH', 'ADVANCED', 'ENTERPRISE'] as const;
export type PlanName = (typeof planNames)[number];

export const WorkspaceEntity = defineEntity({
  name: 'Workspace',
  tableName: 'workspaces',
  properties: {
    id: p.string().length(64).primary(),
    name: p.string().length(200),
    plan: p.enum(planNames),
    notificationEmails: p.array(),
    /** Optimistic-lock version, also carried by the workspace's route so routing-table writes are ordered. */
    version: p.integer().version(),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
});
export type Workspace = InferEntity<typeof WorkspaceEntity>;

export const webhookStatuses = ['active', 'disabled'] as const;
export const disabledReasons = ['manual', 'plan', 'failure_threshold'] as const;
export type DisabledReasonName = (typeof disabledReasons)[number];

export const WebhookEntity = defineEntity({
  name: 'Webhook',
  tableName: 'webhooks',
  properties: {
    id: p.string().length(64).primary(),
    workspace: () => p.manyToOne(WorkspaceEntity).fieldName('workspace_id').deleteRule('cascade'),
    name: p.string().length(200),
    url: p.text(),
    eventTypes: p.array(),
    headers: p.json<Record<string, string>>(),
    status: p.enum(webhookStatuses),
    disabledReason: p.enum(disabledReasons).nullable(),
    disabledDetail: p.text().nullable(),
    disabledAt: p.datetime().nullable(),
    lastError: p.text().nullable(),
    /** The current signing secret, sealed with the platform key (AES-256-GCM). */
    secretSealed: p.blob(),
    /** The secret before the last rotation, valid for deliveries until previousSecretExpiresAt. */
    previousSecretSealed: p.blob().nullable(),
    previousSecretExpiresAt: p.datetime().nullable(),
    /** Deliveries per second; null means no limit. */
    rateLimit: p.integer().nullable(),
    /** Which endpoint authentication is set (readable without the key); null means none. */
    authKind: p.enum(endpointAuthKinds).nullable(),
    /** The endpoint credentials as JSON (libs/domain endpoint-auth), sealed like the signing secret. */
    authSealed: p.blob().nullable(),
    version: p.integer().version(),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
  uniques: [{ properties: ['workspace', 'name'] }],
  indexes: [{ properties: ['workspace', 'id'] }],
});
export type Webhook = InferEntity<typeof WebhookEntity>;



export const deliveryStatuses = ['pending', 'retrying', 'succeeded', 'dropped'] as const;
export type DeliveryStatusName = (typeof deliveryStatuses)[number];

/**
 * One event for one webhook, with its current status; written from the dispatcher's attempt records. The
 * table is partitioned by day of createdAt and its primary key is (id, createdAt); the body is stored once
 * per event in event_bodies (delivery-log/partitions.ts).
 */
export const DeliveryEntity = defineEntity({
  name: 'Delivery',
  tableName: 'deliveries',
  properties: {
    id: p.string().length(64).primary(),
    workspaceId: p.string().length(64),
    webhookId: p.string().length(64),
    eventId: p.string().length(128),
    eventType: p.string().length(64),
    status: p.enum(deliveryStatuses),
    dropReason: p.text().nullable(),
    attemptCount: p.integer(),
    retryOfDeliveryId: p.string().length(64).nullable(),
    /** When its event was accepted: the day partition of the delivery, its attempts and its body (delivery-log/partitions.ts). */
    createdAt: p.datetime(),
    updatedAt: p.datetime(),
  },
  // ListDeliveries pages newest first within a workspace, optionally narrowed by one filter: each index
  // serves one of those orders without sorting.
  indexes: [
    { properties: ['workspaceId', 'createdAt', 'id'] },
    { properties: ['workspaceId', 'webhookId', 'createdAt', 'id'] },
    { properties: ['workspaceId', 'status', 'createdAt', 'id'] },
    { properties: ['workspaceId', 'eventType', 'createdAt', 'id'] },
  ],
});
export type Delivery = InferEntity<typeof DeliveryEntity>;

export const attemptDecisions = ['succeeded', 'retry', 'dropped'] as const;

/** One attempt of a delivery (number 0: dropped before any attempt). */
export const AttemptEntity = defineEntity({
  name: 'Attempt',
  tableName: 'attempts',
  properties: {
    deliveryId: p.string().length(64).primary(),
    number: p.integer().primary(),
    /** Its delivery's createdAt: the day partition it is stored in. */
    createdAt: p.datetime(),
    startTime: p.datetime(),
    durationMs: p.integer(),
    statusCode: p.integer(),
    failureReason: p.text(),
    responseExcerpt: p.text(),
    requestHeaders: p.json<Record<string, string>>(),
    decision: p.enum(attemptDecisions),
    retryAt: p.datetime().nullable(),
  },
  indexes: [{ properties: ['startTime'] }],
});
export type Attempt = InferEntity<typeof AttemptEntity>;

export const entities = [WorkspaceEntity, WebhookEntity, DeliveryEntity, AttemptEntity];

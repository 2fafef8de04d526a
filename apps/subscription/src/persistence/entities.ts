// The control plane's tables. Only the subscription service touches PostgreSQL.
import { defineEntity, p, type InferEntity } from '@mikro-orm/core';

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
    version: p.integer().version(),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p.datetime().onCreate(() => new Date()).onUpdate(() => new Date()),
  },
  uniques: [{ properties: ['workspace', 'name'] }],
  indexes: [{ properties: ['workspace', 'id'] }],
});
export type Webhook = InferEntity<typeof WebhookEntity>;

export const entities = [WorkspaceEntity, WebhookEntity];

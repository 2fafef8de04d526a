// ListWebhookActivity and WatchActivity over gRPC, and who a call acts for. The portal calls with its own
// token and says on whose behalf in the metadata "x-webhooks-on-behalf-of" ("portal-session", or
// "operator:<name>"); any other caller is recorded by its token's name. The claim is taken from whichever
// token sends it, so a token that may claim it is one only the portal holds.
import { ActivityKind, ActorKind, EndpointAuthKind, Plan, type ListWebhookActivityRequest, type WatchActivityRequest, type WebhookActivity } from '@webhooks/contracts';
import type { CallContext, streamHandlers, unaryHandlers } from '@webhooks/grpc-kit';
import { checkWorkspaceId } from '@webhooks/domain';
import { authKindToProto, planToProto } from '../routes.js';
import type { PlanName } from '../persistence/entities.js';
import { cursorOf, idOfCursor, type ActivityFilter, type ActivityKindName, type ActivityRecord, type Actor } from './activity-log.js';

export const onBehalfOfHeader = 'x-webhooks-on-behalf-of';

/** Reads the history (activity-log.ts) and follows it (feed.ts). */
export interface ActivityReader {
  list(workspaceId: string, filter: ActivityFilter, pageSize: number, pageToken: string): Promise<{ records: ActivityRecord[]; nextPageToken: string }>;
  watch(workspaceId: string | undefined, afterId: string, send: (record: ActivityRecord) => Promise<void>, signal: AbortSignal): Promise<boolean>;
}

/** Who the call acts for (see the opening comment). */
export function actorOf(context: Pick<CallContext, 'caller' | 'metadata'>): Actor {
  const token = context.caller.tokenLabel;
  const [claim] = context.metadata.get(onBehalfOfHeader);
  const value = claim === undefined ? '' : String(claim);
  if (value === 'portal-session') return { kind: 'portal_session', name: '', tokenName: token };
  const operator = /^operator:([^\s,]{1,64})$/.exec(value);
  if (operator) return { kind: 'operator', name: operator[1]!, tokenName: token };
  return { kind: 'api_token', name: token, tokenName: token };
}

const kinds: Record<ActivityKindName, ActivityKind> = {
  created: ActivityKind.ACTIVITY_KIND_CREATED,
  edited: ActivityKind.ACTIVITY_KIND_EDITED,
  secret_rotated: ActivityKind.ACTIVITY_KIND_SECRET_ROTATED,
  auth_changed: ActivityKind.ACTIVITY_KIND_AUTH_CHANGED,
  deactivated: ActivityKind.ACTIVITY_KIND_DEACTIVATED,
  activated: ActivityKind.ACTIVITY_KIND_ACTIVATED,
  disabled_by_breaker: ActivityKind.ACTIVITY_KIND_DISABLED_BY_BREAKER,
  disabled_by_plan: ActivityKind.ACTIVITY_KIND_DISABLED_BY_PLAN,
  deliveries_recovered: ActivityKind.ACTIVITY_KIND_DELIVERIES_RECOVERED,
  deleted: ActivityKind.ACTIVITY_KIND_DELETED,
};

const actorKinds: Record<Actor['kind'], ActorKind> = {
  api_token: ActorKind.ACTOR_KIND_API_TOKEN,
  portal_session: ActorKind.ACTOR_KIND_PORTAL_SESSION,
  operator: ActorKind.ACTOR_KIND_OPERATOR,
  system: ActorKind.ACTOR_KIND_SYSTEM,
};

export function activityMessage(record: ActivityRecord): WebhookActivity {
  const d = record.details;
  const window = d.windowSeconds ?? 0;
  return {
    cursor: cursorOf(record),
    workspaceId: record.workspaceId,
    webhookId: record.webhookId,
    webhookName: record.webhookName,
    kind: kinds[record.kind],
    actor: { kind: actorKinds[record.actor.kind], name: record.actor.name, tokenName: record.actor.tokenName },
    time: record.createdAt,
    fields: [...(d.fields ?? [])],
    failureCount: d.failureCount ?? 0,
    window: window > 0 ? { seconds: window, nanos: 0 } : undefined,
    lastError: d.lastError ?? '',
    plan: d.plan ? planToProto(d.plan as PlanName) : Plan.PLAN_UNSPECIFIED,
    recoveredCount: d.recoveredCount ?? 0,
    recoveredSince: d.recoveredSince ? new Date(d.recoveredSince) : undefined,
    authKind: d.authKind ? authKindToProto[d.authKind as keyof typeof authKindToProto] : EndpointAuthKind.ENDPOINT_AUTH_KIND_UNSPECIFIED,
  };
}

export function activityRpcs(activity: ActivityReader, unary: ReturnType<typeof unaryHandlers>, stream: ReturnType<typeof streamHandlers>) {
  return {
    listWebhookActivity: unary('ListWebhookActivity', async (request: ListWebhookActivityRequest, { caller }) => {
      caller.authorize(request.workspaceId);
      const page = await activity.list(request.workspaceId, { webhookId: request.webhookId || undefined, from: request.startTime, to: request.endTime }, request.pageSize, request.pageToken);
      return { activity: page.records.map(activityMessage), nextPageToken: page.nextPageToken };
    }),

    watchActivity: stream('WatchActivity', async (request: WatchActivityRequest, { caller, signal, write }) => {
      if (request.workspaceId) {
        checkWorkspaceId(request.workspaceId, 'workspace_id');
        caller.authorize(request.workspaceId);
      } else {
        caller.authorizeAll('watching every workspace');
      }
      const afterId = idOfCursor(request.cursor);
      const stopped = await activity.watch(request.workspaceId || undefined, afterId, (record) => write({ activity: activityMessage(record) }), signal);
      if (stopped) return { unavailable: 'the service is stopping; call WatchActivity again with the cursor of the last record received' };
    }),
  };
}

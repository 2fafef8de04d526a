// What the end-to-end tests share: sample events and short-hands for the calls every test makes.
import { DeliveryStatus, Plan, type Delivery, type Event, type PublishEventResponse } from '@webhooks/contracts';
import { callUnary, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';

export function contactCreated(id: string, workspaceId: string): Event {
  return {
    id,
    workspaceId,
    type: 'contact.created',
    occurredAt: new Date('2026-11-24T10:00:00.000Z'),
    data: {
      $case: 'contactCreated',
      value: {
        contact: {
          id: 'c_42', firstName: 'Ana', lastName: 'Lima', email: 'ana@example.com', phone: '+5511999999999', language: 'pt',
          countryCode: 'BR', profilePicUrl: '', assignee: undefined, tags: ['lead'], customFields: {}, createdAt: new Date('2026-11-24T10:00:00.000Z'), updatedAt: undefined,
        },
      },
    },
  };
}

/** A new ADVANCED workspace with one webhook for contact.created pointing at `url`. */
export async function workspaceWithWebhook(system: RunningSystem, url: string): Promise<{ workspaceId: string; webhookId: string; secret: string }> {
  const workspaceId = uniqueName('ws');
  await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId, name: 'Acme', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
  const created = await callUnary(system.subscription, system.subscription.createWebhook, {
    workspaceId,
    name: 'hook',
    url,
    eventTypes: ['contact.created'],
    headers: {},
  }, testToken);
  return { workspaceId, webhookId: created.webhook!.id, secret: created.signingSecret };
}

export function publish(system: RunningSystem, event: Event): Promise<PublishEventResponse> {
  return callUnary(system.ingest, system.ingest.publishEvent, { event }, testToken);
}

/**
 * The workspace's succeeded deliveries as the log shows them, once there are `count` (or whatever is
 * there after `timeoutMs`). A call that fails while a fault lasts counts as nothing logged yet.
 */
export async function succeededDeliveries(system: RunningSystem, workspaceId: string, count: number, timeoutMs = 30_000): Promise<Delivery[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const page = await callUnary(system.deliveryLog, system.deliveryLog.listDeliveries, {
      workspaceId, webhookId: '', eventType: '', status: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED, pageSize: 100, pageToken: '',
    }, testToken).catch(() => ({ deliveries: [] as Delivery[], nextPageToken: '' }));
    if (page.deliveries.length >= count || Date.now() > deadline) return page.deliveries;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export { waitUntil } from '@webhooks/testing';

/**
 * Every delivery of one webhook as the log shows it, with its attempts, sorted by event id, once `count`
 * of them are final (succeeded or dropped).
 */
export async function finalDeliveries(system: RunningSystem, workspaceId: string, webhookId: string, count: number, timeoutMs = 60_000): Promise<Delivery[]> {
  const deadline = Date.now() + timeoutMs;
  let listed: Delivery[];
  for (;;) {
    const page = await callUnary(system.deliveryLog, system.deliveryLog.listDeliveries, {
      workspaceId, webhookId, eventType: '', status: DeliveryStatus.DELIVERY_STATUS_UNSPECIFIED, pageSize: 100, pageToken: '',
    }, testToken);
    listed = page.deliveries;
    const final = listed.filter((d) => d.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED || d.status === DeliveryStatus.DELIVERY_STATUS_DROPPED);
    if (final.length >= count) break;
    if (Date.now() > deadline) throw new Error(`only ${final.length} of ${count} deliveries of ${webhookId} are final in the log`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const full = await Promise.all(
    listed.map(async (d) => (await callUnary(system.deliveryLog, system.deliveryLog.getDelivery, { workspaceId, deliveryId: d.id }, testToken)).delivery!),
  );
  return full.sort((a, b) => a.eventId.localeCompare(b.eventId));
}

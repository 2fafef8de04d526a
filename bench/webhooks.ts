// The bench's webhooks, created and removed through the control plane with many calls in flight:
// 10,000 webhooks one call at a time take many minutes, and the control plane is built for replicas
// calling it at once.
import { CreateWebhookRequest, Plan } from '@webhooks/contracts';
import { callUnary, testToken, type RunningSystem } from '@webhooks/testing';
import { pool } from './harness.js';

/** Control-plane calls in flight while setting up or removing webhooks. */
export const setupConcurrency = Number(process.env.BENCH_SETUP_CONCURRENCY ?? 24);

export interface BenchWebhook { workspaceId: string; webhookId: string; path: string }

/**
 * `count` webhooks on `receiverUrl`, each on its own path, `perWorkspace` to a workspace (an event
 * published to a workspace goes to every webhook in it, so the pipeline keeps one per workspace: one event,
 * one delivery). Consecutive calls go to different workspaces so they do not queue on one workspace's row.
 * Logs progress every 2,000 webhooks: at 10,000 the set-up takes minutes.
 */
export async function createWebhooks(system: RunningSystem, receiverUrl: string, count: number, run: string, perWorkspace = 1): Promise<BenchWebhook[]> {
  const workspaces = Math.ceil(count / perWorkspace);
  const workspaceId = (w: number) => `bench_${run}_${w}`;
  await pool(Array.from({ length: workspaces }, (_, w) => w), setupConcurrency, async (w) => {
    await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id: workspaceId(w), name: `bench ${w}`, plan: Plan.PLAN_ENTERPRISE, notificationEmails: [] } }, testToken, 60_000);
  });
  const targets: BenchWebhook[] = [];
  let created = 0;
  await pool(Array.from({ length: count }, (_, i) => i), setupConcurrency, async (i) => {
    const path = `/hook/${run}/${i}`;
    // fromPartial: settings the bench does not set keep their defaults as the contract gains new ones.
    const request = CreateWebhookRequest.fromPartial({ workspaceId: workspaceId(i % workspaces), name: `bench ${i}`, url: receiverUrl + path, eventTypes: ['message.incoming'], headers: {} });
    const response = await callUnary(system.subscription, system.subscription.createWebhook, request, testToken, 60_000);
    targets[i] = { workspaceId: request.workspaceId, webhookId: response.webhook!.id, path };
    if (++created % 2_000 === 0 && count > 2_000) console.log(`  ${created}/${count} webhooks created`);
  });
  return targets;
}

/** Deletes them; deleting a webhook also drops what is still queued for it. */
export async function deleteWebhooks(system: RunningSystem, targets: BenchWebhook[]): Promise<void> {
  await pool(targets, setupConcurrency, async (t) => {
    await callUnary(system.subscription, system.subscription.deleteWebhook, { workspaceId: t.workspaceId, webhookId: t.webhookId }, testToken, 60_000);
  });
}

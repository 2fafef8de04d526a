// The record of accepted event ids (KV <prefix>_accepted, kept for the idempotency window on disk): what
// recognises a retried event after the delivery streams have forgotten its task ids, e.g. because NATS
// restarted after the task was delivered. One key per (workspace, event id); its value is the webhook
// ids the event was queued for, so a duplicate answer names the same webhooks as the first answer.
import type { KV, Topology } from '@webhooks/messaging';

/** An event ingest accepted earlier, and the webhooks it was queued for then. */
export interface EarlierAcceptance {
  readonly webhookIds: string[];
}

interface StoredAcceptance {
  readonly webhookIds: readonly string[];
}

export class AcceptedEvents {
  constructor(
    private readonly kv: KV,
    private readonly topology: Topology,
  ) {}

  /** The earlier acceptance of this event id within the window, if any. */
  async find(workspaceId: string, eventId: string): Promise<EarlierAcceptance | undefined> {
    const entry = await this.kv.get(this.topology.keys.acceptedEvent(workspaceId, eventId));
    if (!entry || entry.operation !== 'PUT') return undefined;
    return { webhookIds: decode(entry.value) };
  }

  /**
   * Records the event as accepted. Call it only after every task is stored: a record without its tasks
   * would answer a retry "duplicate" and the event would be lost. The first record wins (create, not
   * put): two ingest replicas handling the same retry both queued tasks that the stream deduplicated, and
   * the answer to remember is the first one.
   */
  async record(workspaceId: string, eventId: string, webhookIds: readonly string[]): Promise<void> {
    const value = new TextEncoder().encode(JSON.stringify({ webhookIds } satisfies StoredAcceptance));
    try {
      await this.kv.create(this.topology.keys.acceptedEvent(workspaceId, eventId), value);
    } catch (error) {
      if (/wrong last sequence|key exists|already exists/i.test((error as Error).message ?? '')) return;
      throw error;
    }
  }
}

function decode(value: Uint8Array): string[] {
  try {
    const stored = JSON.parse(new TextDecoder().decode(value)) as Partial<StoredAcceptance>;
    return Array.isArray(stored.webhookIds) ? stored.webhookIds.filter((id): id is string => typeof id === 'string') : [];
  } catch {
    // Still a duplicate: the key's presence is what matters; only the webhook list is unknown.
    return [];
  }
}

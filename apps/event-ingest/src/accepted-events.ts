// The record of accepted event ids (KV <prefix>_accepted, kept for the idempotency window on disk): what
// recognises a retried event after the delivery streams have forgotten its task ids, e.g. because NATS
// restarted after the task was delivered. One key per (workspace, event id); its value is the webhook
// ids the event was queued for, so a duplicate answer names the same webhooks as the first answer.
import { compareAndSet, isWriteConflict, type KV, type Topology } from '@webhooks/messaging';

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
   * would answer a retry "duplicate" and the event would be lost. Two ingest replicas handling the same
   * event id at once both find no record and both queue (the streams store each task once); the second
   * record then adds its webhooks to the first (compare-and-set), so the record names every webhook that
   * got the event, and it answers as a duplicate with that whole list. Returns the earlier acceptance
   * when there was one.
   */
  async record(workspaceId: string, eventId: string, webhookIds: readonly string[]): Promise<EarlierAcceptance | undefined> {
    const key = this.topology.keys.acceptedEvent(workspaceId, eventId);
    // The usual case in one request: nobody recorded it yet.
    try {
      await this.kv.create(key, new TextEncoder().encode(JSON.stringify({ webhookIds } satisfies StoredAcceptance)));
      return undefined;
    } catch (error) {
      if (!isWriteConflict(error)) throw error;
    }
    let earlier: string[] | undefined;
    await compareAndSet(this.kv, key, (current) => {
      earlier = current === undefined ? undefined : decode(current);
      const all = earlier === undefined ? [...webhookIds] : [...new Set([...earlier, ...webhookIds])];
      return { value: new TextEncoder().encode(JSON.stringify({ webhookIds: all } satisfies StoredAcceptance)), result: undefined };
    });
    return earlier === undefined ? undefined : { webhookIds: [...new Set([...earlier, ...webhookIds])] };
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

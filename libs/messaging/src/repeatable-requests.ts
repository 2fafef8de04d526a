// JetStream requests that change state, made safe to repeat: in a cluster a reply can be lost after the
// server acted (a leader change, a timeout), so the repeat of such a request must treat "already done" as
// done instead of failing forever.
import { JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';

/** The server's answers to a compare-and-set whose expected revision is stale (wrong last sequence). */
const staleRevision: ReadonlySet<number> = new Set([10071, 10164]);

/**
 * Whether a compare-and-set write lost to another writer: the key changed since the revision named, or
 * (a create) it exists. The KV client reports a create's conflict by message only.
 */
export function isWriteConflict(error: unknown): boolean {
  if (error instanceof JetStreamApiError && staleRevision.has(error.code)) return true;
  return /wrong last sequence|key exists|already exists/i.test((error as Error | undefined)?.message ?? '');
}

/** The server's answer to deleting a message that is not (or no longer) in the stream. */
const messageDeleteFailed = 10057;

/** Whether a delete failed because the message is not in the stream: what a repeat of a delete that went through gets. */
export function isMessageGone(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.code === messageDeleteFailed && /no message found|stream store EOF/i.test(error.message);
}

/** Deletes one stored message; a message already gone counts as deleted. */
export async function deleteStoredMessage(jsm: JetStreamManager, stream: string, seq: number): Promise<void> {
  try {
    await jsm.streams.deleteMessage(stream, seq, false);
  } catch (error) {
    if (!isMessageGone(error)) throw error;
  }
}

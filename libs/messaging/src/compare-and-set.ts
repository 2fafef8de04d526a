// Read-modify-write of one KV key that several processes update: the write names the revision it read,
// so a concurrent change makes it fail and the change is computed again on the new value.
import type { KV } from '@nats-io/kv';
import { isWriteConflict } from './repeatable-requests.js';

// Conflicts only happen between writers of the same key at the same moment; a short random pause
// spreads them out.
const maxTries = 200;

/**
 * Applies `change` to the current value of `key` (undefined when there is none) and writes the result
 * only if nobody wrote in between; retries on conflict. Returns what `change` returned with the write
 * that succeeded, and the revision that write replaced (0 when the key was new).
 */
export async function compareAndSet<T>(kv: KV, key: string, change: (current: Uint8Array | undefined, revision: number) => { value: Uint8Array; result: T }): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const entry = await kv.get(key);
    const exists = entry !== null && entry.operation === 'PUT';
    const revision = entry?.revision ?? 0;
    const { value, result } = change(exists ? entry.value : undefined, revision);
    try {
      if (entry === null) await kv.create(key, value);
      else await kv.update(key, value, revision);
      return result;
    } catch (error) {
      if (!isWriteConflict(error) || attempt >= maxTries) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(20, attempt)));
    }
  }
}

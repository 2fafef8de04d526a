import { createHash, randomBytes } from 'node:crypto';
import { invalidArgument } from './errors.js';

// Ids of the core product (workspaces) and of this system both end up in NATS subjects and KV keys, so
// they are limited to characters that are safe there.
const externalIdPattern = /^[A-Za-z0-9_-]{1,64}$/;
const eventIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;
const crockford = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export function checkWorkspaceId(id: string, field = 'workspace_id'): string {
  if (!externalIdPattern.test(id)) throw invalidArgument(field, 'must be 1-64 characters of A-Z, a-z, 0-9, "_" or "-"');
  return id;
}

export function checkEventId(id: string, field = 'event.id'): string {
  if (!eventIdPattern.test(id)) throw invalidArgument(field, 'must be 1-128 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-"');
  return id;
}

/** Same character rules as workspace ids; used for ids this system issues (webhooks, deliveries). */
export function checkResourceId(id: string, field: string): string {
  if (!externalIdPattern.test(id)) throw invalidArgument(field, `"${id.slice(0, 80)}" is not a valid id`);
  return id;
}

/**
 * A new id that sorts by creation time: prefix, "_", then a ULID (48-bit milliseconds + 80 random bits in
 * Crockford base32). Sortable ids give stable list order and cursor pagination without a second column.
 */
export function newId(prefix: string, now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = crockford[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const random = randomBytes(16);
  let rest = '';
  for (let i = 0; i < 16; i++) rest += crockford[random[i]! % 32];
  return `${prefix}_${time}${rest}`;
}

/**
 * The id of the delivery of one event to one webhook: derived, so every replica and every record of it
 * agree without coordination. Deliveries made by RetryDelivery or SendTestEvent get ids of their own.
 */
export function deliveryIdOf(eventId: string, webhookId: string): string {
  return `dl_${createHash('sha256').update(`${eventId}\u0000${webhookId}`).digest('base64url').slice(0, 26)}`;
}

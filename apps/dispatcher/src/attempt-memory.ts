// What this replica knows about the tasks it has attempted: the last decided attempt of each, so the next
// attempt number and the first attempt's time come from decisions, never from JetStream's delivery count
// (which also counts redeliveries that made no attempt). After a restart or on another replica the same
// facts are read from the webhook's last attempt record instead.
//
// Eviction: a task that finishes here is forgotten at once. One that finishes elsewhere (its retry taken
// by another replica) or is dropped by a drain would stay, so an entry not touched for GIVE_UP_AFTER plus
// a margin is removed (no attempt of a task starts later than GIVE_UP_AFTER after its first), checked at
// most once per sweep interval; and at most `capacity` entries are kept, the least recently touched
// going first. Forgetting early costs only a read of the last attempt record.
import type { Decision } from './delivery.js';

export interface DecidedAttempt {
  /** 1-based number of the last attempt whose decision was made. */
  readonly attempt: number;
  readonly firstAttemptAt: number;
  readonly decision: Decision;
}

interface Entry extends DecidedAttempt {
  touchedAt: number;
}

/** Time on top of GIVE_UP_AFTER before an untouched entry is removed: retries waiting on a busy webhook. */
export const attemptMemoryMarginMs = 60_000;
export const attemptMemoryCapacity = 100_000;

export class AttemptMemory {
  private readonly entries = new Map<string, Entry>();
  private nextSweep = 0;

  constructor(
    private readonly maxAgeMs: number,
    private readonly capacity = attemptMemoryCapacity,
    private readonly sweepIntervalMs = 10_000,
  ) {}

  get(key: string): DecidedAttempt | undefined {
    return this.entries.get(key);
  }

  remember(key: string, decided: DecidedAttempt, now = Date.now()): void {
    // Re-inserted so the Map's order stays least recently touched first.
    this.entries.delete(key);
    this.entries.set(key, { ...decided, touchedAt: now });
    this.evict(now);
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  private evict(now: number): void {
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    if (now < this.nextSweep) return;
    this.nextSweep = now + this.sweepIntervalMs;
    for (const [key, entry] of this.entries) {
      if (entry.touchedAt > now - this.maxAgeMs) break; // the rest were touched later
      this.entries.delete(key);
    }
  }
}

/**
 * Deliveries that ended (succeeded or dropped), by delivery id, kept at least `windowMs` and at most
 * twice that: two generations of a Map, the older dropped whole when the newer is `windowMs` old (or
 * holds `capacity` entries). One small number per delivery and no per-entry object, since every delivery
 * passes through here; what is asked of it is only whether, and how, a delivery ended.
 */
export class EndedDeliveries {
  // Attempt number of a success; minus one minus the attempt number of a drop.
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  private rotateAt: number;

  constructor(
    private readonly windowMs: number,
    private readonly capacity = 200_000,
    now = Date.now(),
  ) {
    this.rotateAt = now + windowMs;
  }

  /**
   * Successes recalled at a takeover (record-batches.ts rule 4), kept apart: the traffic of new deliveries
   * never rotates them out. Two generations by time only, like the others; their number is bounded by the
   * recalls themselves (each reads the successes since the oldest task its predecessor may have had out).
   */
  private recalled = new Map<string, number>();
  private previousRecalled = new Map<string, number>();
  private recalledRotateAt = 0;

  recall(deliveryId: string, attempt: number, now = Date.now()): void {
    if (now >= this.recalledRotateAt) {
      this.previousRecalled = this.recalled;
      this.recalled = new Map();
      this.recalledRotateAt = now + this.windowMs;
    }
    this.recalled.set(deliveryId, attempt);
  }

  add(deliveryId: string, attempt: number, kind: 'succeeded' | 'dropped', now = Date.now()): void {
    if (now >= this.rotateAt || this.current.size >= this.capacity) {
      this.previous = this.current;
      this.current = new Map();
      this.rotateAt = now + this.windowMs;
    }
    this.current.set(deliveryId, kind === 'succeeded' ? attempt : -1 - attempt);
  }

  /** How the delivery ended, as a decided attempt (its first attempt's time is not kept: unknown, 0). */
  get(deliveryId: string): DecidedAttempt | undefined {
    const value = this.current.get(deliveryId) ?? this.previous.get(deliveryId) ?? this.recalled.get(deliveryId) ?? this.previousRecalled.get(deliveryId);
    if (value === undefined) return undefined;
    return value >= 0
      ? { attempt: value, firstAttemptAt: 0, decision: { kind: 'succeeded' } }
      : { attempt: -1 - value, firstAttemptAt: 0, decision: { kind: 'dropped', reason: 'dropped earlier' } };
  }

  get size(): number {
    return this.current.size + this.previous.size + this.recalled.size + this.previousRecalled.size;
  }
}

// What of the delivery consumers is down and being restarted, for readiness. The rules:
// 1. Keys: `shard:<n>` (a shard's consume loop), `lane:<webhook>` (a lane whose handler threw),
//    `park:<webhook>` (a park read or a parked delivery that failed). A key is marked down when its loop
//    fails and up when it works again, or when its shard is released.
// 2. Every restart waits a backoff: 200 ms doubling to 10 s with the failures in a row; a shard loop's
//    to 2 s only. There are at most 16 shard loops per replica (8 requests a second at worst), and a
//    leader election of NATS (4-7 s here) fails every open until it ends: a 6.4 s backoff after it would
//    leave the shard silent that much longer.
// 3. The owner is told the number of keys down whenever it changes; readiness is green at zero.
// Eviction: a key is removed when marked up; a released shard marks its own keys up.
import { dispatcherMetrics } from './metrics.js';

const restartInitialMs = 200;
const restartMaxMs = 10_000;
const shardRestartMaxMs = 2_000;

export class LoopHealth {
  private readonly down = new Set<string>();

  constructor(private readonly onLoopsDown: (down: number) => void) {}

  /** The pause before restart number `failures` (rule 2). */
  static backoff(failures: number, maxMs = restartMaxMs): number {
    return Math.min(maxMs, restartInitialMs * 2 ** Math.max(0, failures - 1));
  }

  /** Marks a loop down, counts its restart, and returns the backoff before it runs again. */
  failed(key: string, failures: number): number {
    this.markDown(key);
    dispatcherMetrics.deliveryLoopRestarts.add(1);
    return LoopHealth.backoff(failures, key.startsWith('shard:') ? shardRestartMaxMs : restartMaxMs);
  }

  markDown(key: string): void {
    if (this.down.has(key)) return;
    this.down.add(key);
    this.onLoopsDown(this.down.size);
  }

  markUp(key: string): void {
    if (this.down.delete(key)) this.onLoopsDown(this.down.size);
  }
}

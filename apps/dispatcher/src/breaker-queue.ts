// Failed attempts on their way to the workspace breaker, off the ack path: dispatch adds a failure and
// moves on; one background drainer per replica applies them one after another (each a compare-and-set on
// KV, and a trip publish when one crosses the threshold). A slow or unavailable KV therefore never holds
// a task past its ack wait, and failures are counted eventually.
//
// Overflow rule: at most `capacity` failures wait. One more is not queued: it is counted in the metric
// webhook.breaker.failures.dropped and logged (the first of each overflow episode), and delivery goes on.
// Losing a few failures of a workspace whose failures already pile up only delays its trip. A failure
// whose count cannot be updated is logged and not retried, as before the queue; a trip it crossed is
// tried again by the breaker itself (breaker.ts), so the queue waits for it meanwhile.
import type { Logger } from '@webhooks/telemetry';
import { dispatcherMetrics } from './metrics.js';

export interface QueuedFailure {
  readonly workspaceId: string;
  readonly webhookId: string;
  readonly at: number;
  readonly reason: string;
}

export interface FailureCounter {
  recordFailure(workspaceId: string, webhookId: string, at: number, reason: string): Promise<void>;
}

export const breakerQueueCapacity = 10_000;

export class BreakerQueue {
  private readonly waiting: QueuedFailure[] = [];
  private draining: Promise<void> | undefined;
  private overflowing = false;

  constructor(
    private readonly breaker: FailureCounter,
    private readonly logger: Logger,
    private readonly capacity = breakerQueueCapacity,
  ) {}

  /** Queues one failure; never waits. False when it was dropped by the overflow rule. */
  add(failure: QueuedFailure): boolean {
    if (this.waiting.length >= this.capacity) {
      dispatcherMetrics.breakerFailuresDropped.add(1);
      if (!this.overflowing) this.logger.error({ workspaceId: failure.workspaceId, capacity: this.capacity }, 'breaker queue full: failed attempts are not counted until it drains');
      this.overflowing = true;
      return false;
    }
    this.waiting.push(failure);
    this.draining ??= this.drain().finally(() => (this.draining = undefined));
    return true;
  }

  get length(): number {
    return this.waiting.length;
  }

  /** Resolves once every failure queued so far has been applied (or failed to be). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    for (let failure = this.waiting.shift(); failure; failure = this.waiting.shift()) {
      if (this.overflowing && this.waiting.length < this.capacity / 2) this.overflowing = false;
      try {
        await this.breaker.recordFailure(failure.workspaceId, failure.webhookId, failure.at, failure.reason);
      } catch (error) {
        this.logger.error({ err: error, workspaceId: failure.workspaceId }, 'breaker update failed');
      }
    }
  }
}

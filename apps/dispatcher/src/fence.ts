// Whether a task of a delivery shard may be started or acked now, by the lease this replica holds
// (ownership.ts). The rules:
// 1. A lane, a park reader or a move to the park asks before every task it starts and every ack it
//    sends; a shard's consumer is opened only when the answer is yes.
// 2. While the lease is not known to be valid (its renewal runs late), the asker waits, polling every
//    100 ms, rather than acting on a lease that may have lapsed; once the shard is released here, the
//    answer is no.
import { sleep } from './concurrency.js';

/** How often an asker whose lease's renewal is late looks again. */
export const ownershipPollMs = 100;

export class ShardFence {
  constructor(
    /** Whether this replica owns the shard's lease now. */
    private readonly owns: (shard: number) => boolean,
    /** Whether the shard is consumed here (acquired, not yet released). */
    private readonly consuming: (shard: number) => boolean,
  ) {}

  /** Whether the lease is held now, without waiting. */
  holds(shard: number): boolean {
    return this.owns(shard);
  }

  /** Waits while the lease's renewal is late; true when the shard may be acted on, false once released (rule 2). */
  async mayAct(shard: number): Promise<boolean> {
    while (this.consuming(shard)) {
      if (this.owns(shard)) return true;
      await sleep(ownershipPollMs);
    }
    return false;
  }
}

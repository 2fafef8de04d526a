// Connections to endpoints, per origin (scheme, host and port). The rules:
// 1. A connection is an undici Client that carries one request at a time. A webhook has one request in
//    flight (lanes.ts), so no webhook waits behind another's response on a connection.
// 2. An origin's free connections wait on a stack: taking one and giving it back cost the same however
//    many webhooks share the origin (undici's Pool scans its connections from the first on every
//    request; with thousands of webhooks on one shared receiver that scan was half the dispatcher's CPU).
// 3. Connections in use are not capped: each webhook holds at most one (rule 1), so a hanging path of a
//    shared origin holds one connection per webhook whose request hangs and never takes one from another
//    webhook. A cap would let enough hanging webhooks of one receiver starve the rest: with 1,000 of
//    10,000 webhooks hanging on one receiver and a cap of 256, the others got 18 deliveries/s. What is
//    bounded is what waits: at most `budget` free connections are kept per origin; one given back beyond
//    that is closed. The number in use is bounded by the shards' limits on tasks out (shard-consumer.ts).
// 4. A connection given back after a failure is kept: undici opens a new socket for its next request
//    when the old one closed. One that was destroyed is dropped, and the origin may open another.
// 5. Eviction: an origin with no request in flight for idleOriginMs has its connections closed and is
//    forgotten (swept at most once per sweepMs, when a connection is taken). Idle sockets close after
//    undici's keep-alive timeout in the meantime.
// 6. A client certificate (mutual TLS) makes its own origin entry (the key names the webhook and its
//    version), so its connections never carry a request without it, or with another webhook's.
import { Client } from 'undici';

/** Free connections kept per origin (rule 3). */
export const defaultConnectionsPerOrigin = 4096;
const idleOriginMs = 5 * 60_000;
const sweepMs = 60_000;

interface Origin {
  readonly origin: string;
  readonly key: string;
  readonly free: Client[];
  /** Connections made and not dropped: free plus in use. */
  size: number;
  inUse: number;
  usedAt: number;
}

/** A connection taken for one request; give it back exactly once. */
export interface Lease {
  readonly client: Client;
  release(): void;
}

export class OriginPools {
  private readonly origins = new Map<string, Origin>();
  private nextSweep = 0;

  constructor(
    /** Makes a connection to the origin (the key's origin part) for the given entry key. */
    private readonly connect: (origin: string, key: string) => Client,
    private readonly budget = defaultConnectionsPerOrigin,
    /** Told when an entry is forgotten (rule 5), to drop what was kept for it. */
    private readonly onEvict: (key: string) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /** A connection to `origin` for the entry `key` (the origin itself, or the origin and a client certificate's key). */
  acquire(origin: string, key: string): Lease {
    const now = this.now();
    if (now >= this.nextSweep) this.sweep(now);
    let entry = this.origins.get(key);
    if (!entry) {
      entry = { origin, key, free: [], size: 0, inUse: 0, usedAt: now };
      this.origins.set(key, entry);
    }
    entry.usedAt = now;
    const client = this.take(entry);
    entry.inUse++;
    return { client, release: once(() => this.giveBack(entry, client)) };
  }

  /** Connections per entry, in use and free (for tests and metrics). */
  stats(key: string): { size: number; inUse: number; free: number } | undefined {
    const entry = this.origins.get(key);
    return entry && { size: entry.size, inUse: entry.inUse, free: entry.free.length };
  }

  async close(): Promise<void> {
    const clients: Client[] = [];
    for (const entry of this.origins.values()) clients.push(...entry.free);
    this.origins.clear();
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
  }

  private take(entry: Origin): Client {
    for (let client = entry.free.pop(); client; client = entry.free.pop()) {
      if (!client.destroyed && !client.closed) return client;
      entry.size--;
    }
    entry.size++;
    return this.connect(entry.origin, entry.key);
  }

  private giveBack(entry: Origin, client: Client): void {
    entry.inUse--;
    entry.usedAt = this.now();
    if (!client.destroyed && !client.closed && entry.free.length < this.budget) {
      entry.free.push(client);
      return;
    }
    entry.size--;
    if (!client.destroyed && !client.closed) void client.close().catch(() => undefined);
  }

  private sweep(now: number): void {
    this.nextSweep = now + sweepMs;
    for (const [key, entry] of this.origins) {
      if (entry.inUse > 0 || entry.usedAt > now - idleOriginMs) continue;
      this.origins.delete(key);
      this.onEvict(key);
      for (const client of entry.free) void client.close().catch(() => undefined);
    }
  }
}

function once(run: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    run();
  };
}

// The data plane's in-memory mirror of the routing table (KV wh_routes). It follows the bucket with a
// supervised watch; sync() makes a reader see every write that completed before it was called, or
// rejects within a bound when the mirror cannot catch up.
import type { KV, KvWatchEntry } from '@nats-io/kv';
import { Route, WorkspaceRoute } from '@webhooks/contracts';

export type RouteChange =
  | { readonly kind: 'webhook'; readonly workspaceId: string; readonly webhookId: string; readonly route: Route | undefined }
  | { readonly kind: 'workspace'; readonly workspaceId: string; readonly workspace: WorkspaceRoute | undefined };

/** The mirror's health: whether it follows the bucket, and why not. */
export type MirrorState = { readonly healthy: true } | { readonly healthy: false; readonly reason: string };

/** The few logger methods the mirror uses (pino's shape: fields first, then the message). */
export interface MirrorLog {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

export interface RoutingTableOptions {
  /** Called for every change the watch applies, after the mirror holds it. */
  readonly onChange?: (change: RouteChange) => void;
  /** Called whenever the mirror's health changes (e.g. to set a readiness check). */
  readonly onState?: (state: MirrorState) => void;
  /** How long sync() may wait for the watch before it rejects with RoutingTableBehindError. */
  readonly syncTimeoutMs?: number;
  /** The first wait before a watch that ended or failed is reopened; it doubles up to 5 s. */
  readonly reopenDelayMs?: number;
  readonly logger?: MirrorLog;
}

export const defaultSyncTimeoutMs = 5_000;
/** open() loads the whole bucket, which may take longer than one sync(); still bounded, so start-up cannot hang. */
const openTimeoutMs = 60_000;
const maxReopenDelayMs = 5_000;
const silent: MirrorLog = { warn() {}, info() {} };

/** sync() gave up: the watch has not applied what the bucket holds within the bound. */
export class RoutingTableBehindError extends Error {
  constructor(
    readonly appliedRevision: number,
    readonly bucketRevision: number | undefined,
    readonly waitedMs: number,
  ) {
    super(
      `the routing table mirror is behind the bucket: revision ${appliedRevision} applied, ${bucketRevision === undefined ? 'the bucket did not answer' : `${bucketRevision} written`}, after ${waitedMs} ms`,
    );
    this.name = 'RoutingTableBehindError';
  }
}

export class RoutingTable {
  private readonly workspaces = new Map<string, WorkspaceRoute>();
  private readonly webhooks = new Map<string, Map<string, Route>>();
  private appliedRevision = 0;
  // Eviction: a waiter leaves when its revision is applied, when its sync() times out, or on stop().
  private waiters: { revision: number; resolve: () => void }[] = [];
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private stopped = false;
  private stopWatch: (() => void) | undefined;
  /** When a stalled watch was last ended on purpose (see behind()). */
  private lastForcedReopen = 0;
  /**
   * Why the mirror is not following the bucket: its watch is being reopened, or a sync() timed out. Each
   * clears once the watch has applied `revision` (undefined: not before the watch is back).
   */
  private readonly problems = new Map<'watch' | 'lag', { reason: string; revision: number | undefined }>();
  private readonly onChange: (change: RouteChange) => void;
  private readonly onState: (state: MirrorState) => void;
  private readonly syncTimeoutMs: number;
  private readonly reopenDelayMs: number;
  private readonly logger: MirrorLog;

  private constructor(
    private readonly kv: KV,
    options: RoutingTableOptions,
  ) {
    this.onChange = options.onChange ?? (() => {});
    this.onState = options.onState ?? (() => {});
    this.syncTimeoutMs = options.syncTimeoutMs ?? defaultSyncTimeoutMs;
    this.reopenDelayMs = options.reopenDelayMs ?? 200;
    this.logger = options.logger ?? silent;
  }

  /**
   * Opens the mirror and resolves once it holds everything the bucket held at the time of the call.
   * The second argument is either the change listener alone or every option.
   */
  static async open(kv: KV, options: RoutingTableOptions | ((change: RouteChange) => void) = {}): Promise<RoutingTable> {
    const table = new RoutingTable(kv, typeof options === 'function' ? { onChange: options } : options);
    const watcher = await kv.watch({ key: '>' });
    table.stopWatch = () => watcher.stop();
    void table.supervise(watcher);
    try {
      await table.bounded(table.sharedSync(), Math.max(openTimeoutMs, table.syncTimeoutMs));
    } catch (error) {
      table.stop();
      throw error;
    }
    return table;
  }

  workspace(workspaceId: string): WorkspaceRoute | undefined {
    return this.workspaces.get(workspaceId);
  }

  webhooksOf(workspaceId: string): Iterable<Route> {
    return this.webhooks.get(workspaceId)?.values() ?? [];
  }

  route(workspaceId: string, webhookId: string): Route | undefined {
    return this.webhooks.get(workspaceId)?.get(webhookId);
  }

  allRoutes(): Route[] {
    return [...this.webhooks.values()].flatMap((m) => [...m.values()]);
  }

  /** Healthy while the watch runs and no sync() has timed out since the mirror last caught up. */
  state(): MirrorState {
    const reasons = [...this.problems.values()].map((p) => p.reason);
    return reasons.length === 0 ? { healthy: true } : { healthy: false, reason: reasons.join('; ') };
  }

  /** The last bucket revision the mirror has applied. */
  revision(): number {
    return this.appliedRevision;
  }

  /**
   * Resolves once the mirror has applied every write the bucket had when this call was made; rejects
   * with RoutingTableBehindError after syncTimeoutMs. Concurrent callers share round trips: at most one
   * status request is in flight, and one more is queued for the callers that arrived after it was sent.
   */
  sync(): Promise<void> {
    return this.bounded(this.sharedSync(), this.syncTimeoutMs);
  }

  stop(): void {
    this.stopped = true;
    this.stopWatch?.();
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters = [];
  }

  private sharedSync(): Promise<void> {
    if (!this.running) {
      this.running = this.syncOnce().finally(() => (this.running = undefined));
      return this.running;
    }
    // The queued callers need a round trip of their own whatever the running one's outcome.
    this.queued ??= this.running.catch(() => undefined).then(() => {
      this.queued = undefined;
      return this.sharedSync();
    });
    return this.queued;
  }

  private bounded(work: Promise<void>, timeoutMs: number): Promise<void> {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.behind(this.awaitedRevision(), Date.now() - started)), timeoutMs);
    });
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  /** The newest bucket revision a sync() is waiting for, if any. */
  private awaitedRevision(): number | undefined {
    return this.waiters.length === 0 ? undefined : Math.max(...this.waiters.map((w) => w.revision));
  }

  private async syncOnce(): Promise<void> {
    const started = Date.now();
    const status = await this.kv.status();
    const { last_seq: target, messages } = status.streamInfo.state;
    // An empty bucket has nothing to wait for, even if its sequence counter has moved on.
    if (messages === 0 || this.appliedRevision >= target) return;
    const waiter = { revision: target, resolve: () => {} };
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        waiter.resolve = resolve;
        this.waiters.push(waiter);
        // Callers give up after their own bound (bounded()); this one only ends a round that never completes.
        timer = setTimeout(() => reject(this.behind(target, Date.now() - started)), Math.max(openTimeoutMs, this.syncTimeoutMs));
      });
    } finally {
      clearTimeout(timer);
      this.waiters = this.waiters.filter((w) => w !== waiter);
    }
  }

  /** A sync() that timed out: the mirror reports unhealthy until it has applied `target`. */
  private behind(target: number | undefined, waitedMs: number): RoutingTableBehindError {
    const error = new RoutingTableBehindError(this.appliedRevision, target, waitedMs);
    const known = this.problems.get('lag');
    if (target !== undefined && target > this.appliedRevision && !this.stopped && (known?.revision ?? 0) < target) {
      this.setProblem('lag', { reason: error.message, revision: target });
    }
    // A watch that neither delivers nor fails (its consumer was lost with a server, and the client did not
    // notice) is ended, so the supervisor reopens it from the last applied revision: at most once per bound.
    if (target !== undefined && target > this.appliedRevision && !this.stopped && Date.now() - this.lastForcedReopen >= this.syncTimeoutMs) {
      this.lastForcedReopen = Date.now();
      this.logger.warn({ appliedRevision: this.appliedRevision, bucketRevision: target }, 'the routing table watch is stalled; reopening it');
      this.stopWatch?.();
    }
    return error;
  }

  /**
   * Runs the watch, and reopens it from the last applied revision whenever it ends or throws (STYLE.md
   * 14): the mirror reports unhealthy from then until the new watch has caught up with the bucket.
   */
  private async supervise(first: AsyncIterable<KvWatchEntry>): Promise<void> {
    let watcher: AsyncIterable<KvWatchEntry> | undefined = first;
    let delay = this.reopenDelayMs;
    while (!this.stopped) {
      let problem: string;
      try {
        watcher ??= await this.reopen();
        for await (const entry of watcher) {
          this.apply(entry);
          delay = this.reopenDelayMs;
        }
        problem = 'the routing table watch ended';
      } catch (error) {
        problem = `the routing table watch failed: ${error instanceof Error ? error.message : String(error)}`;
      }
      watcher = undefined;
      if (this.stopped) return;
      this.setProblem('watch', { reason: `${problem}; reopening it from revision ${this.appliedRevision + 1}`, revision: undefined });
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
      delay = Math.min(delay * 2, maxReopenDelayMs);
    }
  }

  private async reopen(): Promise<AsyncIterable<KvWatchEntry>> {
    const from = this.appliedRevision + 1;
    const watcher = await this.kv.watch({ key: '>', ...(this.appliedRevision > 0 ? { resumeFromRevision: from } : {}) });
    this.stopWatch = () => watcher.stop();
    if (this.stopped) watcher.stop();
    this.logger.info({ fromRevision: from }, 'routing table watch reopened');
    // Healthy again once the new watch has applied what the bucket holds now (a stalled one never does);
    // without an answer on the bucket's state, once it applies anything.
    const problem = this.problems.get('watch');
    if (problem) {
      const target = await this.kv.status().then(
        (status) => (status.streamInfo.state.messages === 0 ? 0 : status.streamInfo.state.last_seq),
        () => this.appliedRevision + 1,
      );
      if (target <= this.appliedRevision) this.setProblem('watch', undefined);
      else problem.revision = target;
    }
    return watcher;
  }

  private setProblem(kind: 'watch' | 'lag', problem: { reason: string; revision: number | undefined } | undefined): void {
    const was = this.state().healthy;
    if (problem) {
      this.problems.set(kind, problem);
      this.logger.warn({ appliedRevision: this.appliedRevision, bucketRevision: problem.revision }, problem.reason);
    } else {
      if (!this.problems.delete(kind)) return;
      this.logger.info({ appliedRevision: this.appliedRevision, kind }, 'the routing table mirror follows the bucket again');
    }
    const now = this.state();
    if (now.healthy !== was || !now.healthy) this.onState(now);
  }

  private apply(entry: KvWatchEntry): void {
    // A reopened watch may hand out again what the previous one already applied.
    if (entry.revision <= this.appliedRevision) return;
    const removed = entry.operation !== 'PUT';
    const parts = entry.key.split('.');
    if (parts[0] === 'ws' && parts.length === 2) {
      const workspaceId = parts[1]!;
      const workspace = removed ? undefined : WorkspaceRoute.decode(entry.value);
      if (workspace) this.workspaces.set(workspaceId, workspace);
      else this.workspaces.delete(workspaceId);
      this.onChange({ kind: 'workspace', workspaceId, workspace });
    } else if (parts[0] === 'wh' && parts.length === 3) {
      const [, workspaceId, webhookId] = parts as [string, string, string];
      const route = removed ? undefined : Route.decode(entry.value);
      let forWorkspace = this.webhooks.get(workspaceId);
      if (route) {
        if (!forWorkspace) this.webhooks.set(workspaceId, (forWorkspace = new Map()));
        forWorkspace.set(webhookId, route);
      } else if (forWorkspace) {
        forWorkspace.delete(webhookId);
        if (forWorkspace.size === 0) this.webhooks.delete(workspaceId);
      }
      this.onChange({ kind: 'webhook', workspaceId, webhookId, route });
    }
    this.appliedRevision = entry.revision;
    for (const [kind, problem] of this.problems) {
      if (problem.revision !== undefined && this.appliedRevision >= problem.revision) this.setProblem(kind, undefined);
    }
    if (this.waiters.length > 0) {
      const ready = this.waiters.filter((w) => w.revision <= this.appliedRevision);
      this.waiters = this.waiters.filter((w) => w.revision > this.appliedRevision);
      for (const waiter of ready) waiter.resolve();
    }
  }
}

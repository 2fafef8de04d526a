// The data plane's in-memory mirror of the routing table (KV bucket wh_routes). It follows the bucket
// with a watch; sync() makes a reader see every write that completed before it was called.
import type { KV, KvWatchEntry } from '@nats-io/kv';
import { Route, WorkspaceRoute } from '@webhooks/contracts';

export type RouteChange =
  | { readonly kind: 'webhook'; readonly workspaceId: string; readonly webhookId: string; readonly route: Route | undefined }
  | { readonly kind: 'workspace'; readonly workspaceId: string; readonly workspace: WorkspaceRoute | undefined };

export class RoutingTable {
  private readonly workspaces = new Map<string, WorkspaceRoute>();
  private readonly webhooks = new Map<string, Map<string, Route>>();
  private appliedRevision = 0;
  private waiters: { revision: number; resolve: () => void }[] = [];
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private stopWatch: (() => void) | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly onChange: (change: RouteChange) => void,
  ) {}

  /** Opens the mirror and resolves once it holds everything the bucket held at the time of the call. */
  static async open(kv: KV, onChange: (change: RouteChange) => void = () => {}): Promise<RoutingTable> {
    const table = new RoutingTable(kv, onChange);
    const watcher = await kv.watch({ key: '>' });
    table.stopWatch = () => watcher.stop();
    void (async () => {
      for await (const entry of watcher) table.apply(entry);
    })();
    await table.sync();
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

  /**
   * Resolves once the mirror has applied every write the bucket had when this call was made. Concurrent
   * callers share round trips: at most one status request is in flight, and one more is queued for the
   * callers that arrived after it was sent.
   */
  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.syncOnce().finally(() => (this.running = undefined));
      return this.running;
    }
    this.queued ??= this.running.then(() => {
      this.queued = undefined;
      return this.sync();
    });
    return this.queued;
  }

  stop(): void {
    this.stopWatch?.();
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters = [];
  }

  private async syncOnce(): Promise<void> {
    const status = await this.kv.status();
    const { last_seq: target, messages } = status.streamInfo.state;
    // An empty bucket has nothing to wait for, even if its sequence counter has moved on.
    if (messages === 0 || this.appliedRevision >= target) return;
    await new Promise<void>((resolve) => this.waiters.push({ revision: target, resolve }));
  }

  private apply(entry: KvWatchEntry): void {
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
    if (this.waiters.length > 0) {
      const ready = this.waiters.filter((w) => w.revision <= this.appliedRevision);
      this.waiters = this.waiters.filter((w) => w.revision > this.appliedRevision);
      for (const waiter of ready) waiter.resolve();
    }
  }
}

// Following webhook activity as it is written (WatchActivity). The rules:
// 1. One connection per replica LISTENs on the channel the writers notify (activity-log.ts rule 3). A
//    notification wakes the watches of its workspace and every watch of all workspaces. A connection that
//    fails is replaced after a second; every watch reads again once it is back.
// 2. A watch reads the records after its cursor, oldest first, a page at a time, and hands each to its
//    stream, waiting while the stream's buffer is full (a slow client holds only its own watch), then
//    moves its cursor past it. With nothing new it waits for a wake-up, at most pollMs: a notification lost
//    with a broken connection delays a record by that much, never loses it (the table is the truth).
// 3. A watch sends every id once, in increasing order: ids are commit order (activity-log.ts rule 2).
// 4. stop() ends every watch: the stream is closed with UNAVAILABLE, and its client resumes elsewhere with
//    the cursor of the last record it received.
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from '@webhooks/telemetry';
import { activityAfter, activityChannel, type ActivityRecord } from './activity-log.js';

/** The longest a watch waits without a notification before it reads again (rule 2). */
export const defaultPollMs = 5_000;
const reconnectMs = 1_000;
const pageSize = 200;

interface Waiter {
  readonly workspaceId: string | undefined;
  wake(): void;
}

interface ListenClient {
  query(text: string): Promise<unknown>;
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  release(error?: Error | boolean): void;
}

export class ActivityFeed {
  private readonly waiters = new Set<Waiter>();
  private readonly watches = new Set<AbortController>();
  private client: ListenClient | undefined;
  private stopped = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly orm: MikroORM,
    private readonly logger: Logger,
    private readonly pollMs = defaultPollMs,
  ) {}

  /** Opens the listening connection; a failure is retried in the background (rule 1). */
  async start(): Promise<void> {
    await this.listen().catch((error: unknown) => this.listenFailed(error));
  }

  /**
   * Sends every record after `afterId` (of one workspace, or all), then each new one, until `signal`
   * aborts or the feed stops; `send` resolves once the stream can take more. Resolves when it ends:
   * true when the feed stopped (the client should resume elsewhere), false when the client went away.
   */
  async watch(workspaceId: string | undefined, afterId: string, send: (record: ActivityRecord) => Promise<void>, signal: AbortSignal): Promise<boolean> {
    const own = new AbortController();
    this.watches.add(own);
    const aborted = () => signal.aborted || own.signal.aborted;
    let cursor = afterId;
    try {
      while (!aborted()) {
        // Listening before reading: a record committed between the read and the wait still wakes it.
        const woken = this.wakeUp(workspaceId, [signal, own.signal]);
        let records: ActivityRecord[];
        try {
          records = await activityAfter(this.orm.em.fork(), workspaceId, cursor, pageSize);
        } catch (error) {
          woken.cancel();
          this.logger.error({ err: error, workspaceId }, 'reading webhook activity failed; trying again');
          await this.pause(reconnectMs, [signal, own.signal]);
          continue;
        }
        for (const record of records) {
          if (aborted()) break;
          await send(record);
          cursor = record.id;
        }
        if (records.length === pageSize) {
          woken.cancel();
          continue;
        }
        await woken.promise;
      }
      return own.signal.aborted;
    } finally {
      this.watches.delete(own);
    }
  }

  /** Ends every watch (rule 4) and closes the listening connection. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    for (const watch of this.watches) watch.abort();
    this.client?.release(true);
    this.client = undefined;
  }

  private async listen(): Promise<void> {
    const pool = (await this.orm.em.getConnection().getNativeClient()) as unknown as { connect(): Promise<ListenClient> };
    const client = await pool.connect();
    client.on('notification', (message) => {
      if (message.channel === activityChannel) this.wake(message.payload);
    });
    client.on('error', (error) => {
      if (this.client !== client) return;
      this.client = undefined;
      client.release(error);
      this.listenFailed(error);
    });
    await client.query(`LISTEN ${activityChannel}`);
    if (this.stopped) {
      client.release(true);
      return;
    }
    this.client = client;
    // Whatever was written while no connection listened is read now.
    this.wake(undefined);
  }

  private listenFailed(error: unknown): void {
    if (this.stopped) return;
    this.logger.warn({ err: error }, 'listening for webhook activity failed; watches poll until it is back');
    this.reconnectTimer = setTimeout(() => void this.listen().catch((again: unknown) => this.listenFailed(again)), reconnectMs);
  }

  /** Wakes the watches of the workspace and of all workspaces; every watch when `workspaceId` is undefined. */
  private wake(workspaceId: string | undefined): void {
    for (const waiter of [...this.waiters]) {
      if (workspaceId === undefined || waiter.workspaceId === undefined || waiter.workspaceId === workspaceId) waiter.wake();
    }
  }

  /** Resolves on a wake-up for the workspace, after pollMs, or when a signal aborts. */
  private wakeUp(workspaceId: string | undefined, signals: readonly AbortSignal[]): { promise: Promise<void>; cancel(): void } {
    let waiter: Waiter | undefined;
    let timer: NodeJS.Timeout | undefined;
    let finish = () => {};
    const promise = new Promise<void>((resolve) => {
      finish = () => {
        clearTimeout(timer);
        if (waiter) this.waiters.delete(waiter);
        for (const signal of signals) signal.removeEventListener('abort', finish);
        resolve();
      };
      waiter = { workspaceId, wake: finish };
      this.waiters.add(waiter);
      timer = setTimeout(finish, this.pollMs);
      for (const signal of signals) signal.addEventListener('abort', finish, { once: true });
    });
    return { promise, cancel: finish };
  }

  private pause(ms: number, signals: readonly AbortSignal[]): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        for (const signal of signals) signal.removeEventListener('abort', done);
        resolve();
      }
      for (const signal of signals) signal.addEventListener('abort', done, { once: true });
    });
  }
}

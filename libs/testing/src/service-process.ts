import { spawn, type ChildProcess } from 'node:child_process';
import { setupRetryBudgetMs } from '@webhooks/messaging';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export type ServiceName = 'subscription' | 'event-ingest' | 'dispatcher' | 'notifier' | 'portal';

/** One JSON log line of a service. */
export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

/**
 * A built service (apps/<name>/dist/main.js) running as its own process. start() resolves when it logs
 * "ready", with the ports it bound; its log lines are kept for assertions and printed if it fails.
 */
export class ServiceProcess {
  readonly logs: LogLine[] = [];
  private exited: Promise<number | null>;
  private lineWaiters: { match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];

  private constructor(
    readonly name: ServiceName,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const text = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        this.onLine(text);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
  }

  /**
   * `timeoutMs` covers a start-up that waits for a NATS cluster electing leaders: every service tries its
   * topology set-up again for up to setupRetryBudgetMs (60 s) before it gives up, so a replica restarted
   * right after a server's kill may be ready only then (seen: a subscription replica in the cluster suite
   * still setting up after 20 s). A healthy start takes about a second; only a failing test waits longer.
   */
  static async start(name: ServiceName, env: Record<string, string>, timeoutMs = setupRetryBudgetMs + 10_000): Promise<ServiceProcess> {
    const child = spawn(process.execPath, [join(repoRoot, 'apps', name, 'dist', 'main.js')], {
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const service = new ServiceProcess(name, child);
    const ready = service.waitForLog((line) => line.msg === 'ready', timeoutMs);
    const early = service.exited.then((code) => {
      throw new Error(`${name} exited with code ${code} before it was ready:\n${service.logText()}`);
    });
    try {
      await Promise.race([ready, early]);
    } catch (error) {
      // Never leave a half-started service behind.
      child.kill('SIGKILL');
      throw error;
    }
    return service;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** False once the process has exited or was killed. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The port the service logged for `key` in its "ready" line (e.g. grpcPort). */
  port(key = 'grpcPort'): number {
    const ready = this.logs.find((line) => line.msg === 'ready');
    const port = ready?.[key];
    if (typeof port !== 'number') throw new Error(`${this.name} logged no ${key}`);
    return port;
  }

  address(key = 'grpcPort'): string {
    return `127.0.0.1:${this.port(key)}`;
  }

  waitForLog(match: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const found = this.logs.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no matching log line within ${timeoutMs} ms:\n${this.logText()}`)), timeoutMs);
      this.lineWaiters.push({
        match,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  }

  /** SIGTERM, then the exit code (SIGKILL after `graceMs`). */
  async stop(graceMs = 10_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** SIGKILL: a crash, with no chance to clean up. */
  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  logText(): string {
    return this.logs.map((line) => JSON.stringify(line)).join('\n');
  }

  private onLine(text: string): void {
    if (text.trim() === '') return;
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text, level: 'raw' };
    }
    this.logs.push(line);
    const ready = this.lineWaiters.filter((w) => w.match(line));
    this.lineWaiters = this.lineWaiters.filter((w) => !w.match(line));
    for (const waiter of ready) waiter.resolve(line);
  }
}

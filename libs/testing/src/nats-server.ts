import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

function natsServerBinary(): string {
  for (const candidate of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) if (existsSync(candidate)) return candidate;
  return 'nats-server';
}

/** Starts nats-server with these arguments; resolves with the process once it accepts clients. */
export async function spawnNatsServer(args: readonly string[], name = 'nats-server'): Promise<ChildProcess> {
  const child = spawn(natsServerBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Server is ready')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}: ${output}`)));
  });
  return child;
}

/**
 * A private NATS server with JetStream for tests that stop and start it: its own port on 127.0.0.1 and
 * its own store folder, kept across restarts so streams survive like they would in production.
 */
export class PrivateNatsServer {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly storeDir: string,
    /** The monitoring endpoint's port (http://127.0.0.1:<port>/varz, /jsz, ...), when asked for. */
    readonly monitorPort?: number,
  ) {}

  /** `monitoring: true` also opens the HTTP monitoring endpoint on a free port (monitorUrl). */
  static async start(options: { monitoring?: boolean } = {}): Promise<PrivateNatsServer> {
    const server = new PrivateNatsServer(await freePort(), mkdtempSync(join(tmpdir(), 'nats-test-')), options.monitoring ? await freePort() : undefined);
    await server.resume();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get monitorUrl(): string | undefined {
    return this.monitorPort === undefined ? undefined : `http://127.0.0.1:${this.monitorPort}`;
  }

  /** (Re)starts the server on the same port and store; resolves once it accepts clients. */
  async resume(): Promise<void> {
    const monitoring = this.monitorPort === undefined ? [] : ['-m', String(this.monitorPort)];
    this.child = await spawnNatsServer(['-a', '127.0.0.1', '-p', String(this.port), ...monitoring, '-js', '-sd', this.storeDir]);
  }

  /** Stops the server (SIGTERM) and waits for it to exit. */
  async pause(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    this.child = undefined;
  }

  /** Stops it and removes its store. */
  async remove(): Promise<void> {
    await this.pause();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}

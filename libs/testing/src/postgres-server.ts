import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const version = existsSync(root) ? readdirSync(root).sort().at(-1) : undefined;
  if (!version) throw new Error('PostgreSQL server programs not found under /usr/lib/postgresql');
  return join(root, version, 'bin');
}

/**
 * A private PostgreSQL cluster for tests that stop and start the database: its own data folder and port
 * on 127.0.0.1, trust authentication. As root it runs the server as the "postgres" user, since
 * PostgreSQL refuses to run as root.
 */
export class PrivatePostgresServer {
  private constructor(
    readonly port: number,
    private readonly dataDir: string,
  ) {}

  static async start(): Promise<PrivatePostgresServer> {
    const dataDir = mkdtempSync(join(tmpdir(), 'pg-test-'));
    chmodSync(dataDir, 0o700);
    const server = new PrivatePostgresServer(await freePort(), dataDir);
    if (process.getuid?.() === 0) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
      chownSync(dataDir, uid, gid);
    }
    server.run('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    server.resume();
    return server;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** A URL for another database on this server. */
  urlFor(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  resume(): void {
    this.run('pg_ctl', ['-D', this.dataDir, '-l', join(this.dataDir, 'server.log'), '-w', '-o', `-p ${this.port} -k ${this.dataDir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
  }

  pause(): void {
    this.run('pg_ctl', ['-D', this.dataDir, '-w', '-m', 'fast', 'stop']);
  }

  remove(): void {
    spawnSync(join(binDir(), 'pg_ctl'), ['-D', this.dataDir, '-m', 'immediate', 'stop'], process.getuid?.() === 0 ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()) } : {});
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  private run(program: string, args: string[]): void {
    const asPostgres = process.getuid?.() === 0 ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) } : {};
    const result = spawnSync(join(binDir(), program), args, { ...asPostgres, encoding: 'utf8', cwd: tmpdir() });
    if (result.status !== 0) throw new Error(`${program} failed (${result.status}): ${result.stderr || result.stdout}`);
  }
}

// Three nats-server processes clustered on loopback ports with JetStream: the production topology on one
// machine. Each server keeps its store folder across a kill and a restart, like a pod with a volume.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectNats, jetstreamManager } from '@webhooks/messaging';
import { spawnNatsServer } from './nats-server.js';
import { freePort } from './ports.js';

interface ClusterMember {
  readonly name: string;
  readonly port: number;
  readonly routePort: number;
  /** The monitoring endpoint (http://127.0.0.1:<port>/varz, /jsz, ...). */
  readonly monitorPort: number;
  readonly configFile: string;
  child: ChildProcess | undefined;
}

export class NatsCluster {
  private constructor(
    private readonly dir: string,
    private readonly members: ClusterMember[],
  ) {}

  /** Starts three servers and resolves once JetStream has a meta leader and answers. */
  static async start(size = 3): Promise<NatsCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'nats-cluster-'));
    const ports = await Promise.all(Array.from({ length: size }, async () => ({ port: await freePort(), routePort: await freePort(), monitorPort: await freePort() })));
    const routes = ports.map((p) => `nats-route://127.0.0.1:${p.routePort}`);
    const members = ports.map((p, i): ClusterMember => {
      const name = `n${i + 1}`;
      const store = join(dir, name);
      mkdirSync(store);
      const configFile = join(dir, `${name}.conf`);
      writeFileSync(
        configFile,
        [
          `server_name: ${name}`,
          `listen: 127.0.0.1:${p.port}`,
          `http: 127.0.0.1:${p.monitorPort}`,
          `jetstream { store_dir: "${store}" }`,
          `cluster { name: test_cluster, listen: 127.0.0.1:${p.routePort}, routes: [${routes.join(', ')}] }`,
          '',
        ].join('\n'),
      );
      return { name, ...p, configFile, child: undefined };
    });
    const cluster = new NatsCluster(dir, members);
    try {
      await Promise.all(members.map((member) => cluster.startMember(member)));
      await cluster.waitForJetStream();
    } catch (error) {
      await cluster.remove();
      throw error;
    }
    return cluster;
  }

  /** Every server's client URL, comma-separated, as services take it in NATS_URL. */
  get url(): string {
    return this.members.map((m) => `nats://127.0.0.1:${m.port}`).join(',');
  }

  get names(): string[] {
    return this.members.map((m) => m.name);
  }

  monitorUrl(name: string): string {
    return `http://127.0.0.1:${this.member(name).monitorPort}`;
  }

  /** SIGKILL: the server dies with no chance to hand over leadership. */
  async kill(name: string): Promise<void> {
    const member = this.member(name);
    const child = member.child;
    member.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts a killed server again on its port and store, and waits until JetStream answers again. */
  async restart(name: string): Promise<void> {
    await this.startMember(this.member(name));
    await this.waitForJetStream();
  }

  /** The server leading each of the given streams (its server_name), as stream info reports it. */
  async leaders(streams: readonly string[]): Promise<Map<string, string>> {
    const nc = await connectNats(this.url, 'test-cluster-leaders');
    try {
      const jsm = await jetstreamManager(nc);
      const out = new Map<string, string>();
      for (const stream of streams) {
        const info = await jsm.streams.info(stream);
        if (info.cluster?.leader) out.set(stream, info.cluster.leader);
      }
      return out;
    } finally {
      await nc.close();
    }
  }

  /** Stops every server and removes the stores. */
  async remove(): Promise<void> {
    await Promise.all(this.members.map((m) => this.kill(m.name)));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private member(name: string): ClusterMember {
    const member = this.members.find((m) => m.name === name);
    if (!member) throw new Error(`no server ${name} in the cluster (${this.names.join(', ')})`);
    return member;
  }

  private async startMember(member: ClusterMember): Promise<void> {
    member.child = await spawnNatsServer(['-c', member.configFile], `nats-server ${member.name}`);
  }

  /** JetStream answers once the servers elected a meta leader; until then API requests fail. */
  private async waitForJetStream(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const nc = await connectNats(this.url, 'test-cluster-probe');
    try {
      for (;;) {
        try {
          // Making the manager already asks JetStream for the account's information.
          await (await jetstreamManager(nc, { timeout: 2_000 })).getAccountInfo();
          return;
        } catch (error) {
          if (Date.now() > deadline) throw new Error(`the cluster's JetStream did not answer within ${timeoutMs} ms`, { cause: error });
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    } finally {
      await nc.close();
    }
  }
}

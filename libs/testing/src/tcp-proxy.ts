// A TCP proxy on 127.0.0.1 in front of a real server (PostgreSQL, SMTP, ...) that can stall: it stops
// forwarding bytes in both directions without closing any socket, as a hung network or server does, and
// resumes later with nothing lost. Connections opened while stalled are accepted and stall too.
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private stalled = false;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Listens on a free port of 127.0.0.1 and forwards every connection to host:port. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const proxy = new TcpProxy(server, (server.address() as AddressInfo).port);
    server.on('connection', (client) => proxy.forward(client, target));
    return proxy;
  }

  /** host:port of the proxy, to put in a URL in place of the target's. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** How many sockets (both sides) are open, e.g. to see that hung connections were given up. */
  get openSockets(): number {
    return this.sockets.size;
  }

  /** Stops reading from every socket: bytes wait in the kernel's buffers, nothing is closed. */
  stall(): void {
    this.stalled = true;
    for (const socket of this.sockets) socket.pause();
  }

  resume(): void {
    this.stalled = false;
    for (const socket of this.sockets) socket.resume();
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(client: Socket, target: { host: string; port: number }): void {
    const upstream = connect(target.port, target.host);
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      this.sockets.add(from);
      if (this.stalled) from.pause();
      // Written by hand rather than piped: pipe() resumes a paused source on 'drain', which would undo a stall.
      from.on('data', (chunk) => to.write(chunk));
      from.on('end', () => to.end());
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
    }
  }
}

// An HTTP CONNECT proxy on 127.0.0.1 (the kind that gives deliveries static egress addresses): it records
// every CONNECT it is asked for, opens the tunnel and copies bytes both ways. It never resolves names
// itself in tests that check the dispatcher asks for an IP address; `connects` shows what was asked.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export class ConnectProxy {
  /** The authority (host:port) of every CONNECT request, in order. */
  readonly connects: string[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<ConnectProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const proxy = new ConnectProxy(server, (server.address() as AddressInfo).port);
    server.on('connection', (client) => proxy.serve(client));
    return proxy;
  }

  /** For EGRESS_PROXY_URL. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  }

  private serve(client: Socket): void {
    this.track(client);
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      client.off('data', onData);
      const [method, authority] = head.subarray(0, head.indexOf('\r\n')).toString('latin1').split(' ');
      const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(authority ?? '');
      if (method !== 'CONNECT' || !match) {
        client.end('HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      this.connects.push(authority!);
      const upstream = connect({ host: match[1]!.replace(/^\[|\]$/g, ''), port: Number(match[2]) });
      this.track(upstream);
      upstream.once('connect', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        const rest = head.subarray(end + 4);
        if (rest.length > 0) upstream.write(rest);
        client.pipe(upstream);
        upstream.pipe(client);
      });
      upstream.once('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n'));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    };
    client.on('data', onData);
  }
}

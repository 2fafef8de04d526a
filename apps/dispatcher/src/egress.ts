// How the dispatcher's connections leave: the endpoint's host name is resolved here and every address is
// checked against the URL policy before anything connects (DNS rebinding cannot reach internal hosts).
// Without EGRESS_PROXY_URL the connection goes straight to the checked address. With it, the proxy is
// asked to CONNECT to that checked IP (never to the name, which the proxy would resolve again), and TLS
// runs through the tunnel still verifying the endpoint's host name (servername = host), so deliveries
// leave from the proxy's addresses that customers allow-list.
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { checkResolvedAddress, type UrlPolicy } from '@webhooks/domain';
import { buildConnector } from 'undici';

export class ForbiddenAddressError extends Error {
  readonly code = 'EFORBIDDENADDRESS';
}

export class EgressProxyError extends Error {
  readonly code = 'EEGRESSPROXY';
}

/**
 * A client certificate presented to the endpoint (mutual TLS), and the CAs the endpoint's certificate
 * must chain to when the webhook names its own (in place of the public CAs, for its connections only).
 */
export interface ClientIdentity {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string | undefined;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** dns.lookup, refusing a name when any address it resolves to is not allowed by the policy. */
export function safeLookup(policy: UrlPolicy) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      for (const { address } of addresses) {
        const verdict = checkResolvedAddress(address, hostname, policy);
        if (!verdict.ok) return callback(new ForbiddenAddressError(verdict.reason), []);
      }
      if (options.all) return callback(null, addresses);
      const [first] = addresses;
      callback(null, first!.address, first!.family);
    });
  };
}

export interface EgressOptions {
  readonly policy: UrlPolicy;
  /** http://[user:password@]host:port of an HTTP CONNECT proxy; undefined connects directly. */
  readonly proxyUrl: URL | undefined;
  readonly identity?: ClientIdentity | undefined;
  /** Bounds the connection to the proxy and its CONNECT answer. */
  readonly connectTimeoutMs: number;
}

/** The connector an undici Agent uses for every new connection. */
export function egressConnector(options: EgressOptions): buildConnector.connector {
  const identity = options.identity;
  const tlsOptions = { rejectUnauthorized: true, ...(identity ? { cert: identity.cert, key: identity.key, ...(identity.ca ? { ca: identity.ca } : {}) } : {}) };
  const lookup = safeLookup(options.policy);
  if (!options.proxyUrl) return buildConnector({ ...tlsOptions, lookup: lookup as never, timeout: options.connectTimeoutMs });
  const proxy = options.proxyUrl;
  // TLS inside the tunnel: undici's own connector, given the tunnel as the socket to upgrade.
  const overTunnel = buildConnector({ ...tlsOptions, timeout: options.connectTimeoutMs });
  return (target, callback) => {
    const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
    const hostname = target.hostname.replace(/^\[|\]$/g, '');
    lookup(hostname, {}, (error, address) => {
      if (error) return callback(error, null);
      openTunnel(proxy, address as string, port, options.connectTimeoutMs).then(
        (socket) => {
          if (target.protocol !== 'https:') return callback(null, socket);
          // servername stays the endpoint's host name: its certificate is verified against it.
          overTunnel({ ...target, servername: target.servername || (isIP(hostname) ? '' : hostname), httpSocket: socket }, callback);
        },
        (tunnelError: unknown) => callback(tunnelError as Error, null),
      );
    });
  };
}

/** Asks the proxy for a tunnel to address:port; resolves with the socket once it answers 200. */
function openTunnel(proxy: URL, address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const authority = `${isIP(address) === 6 ? `[${address}]` : address}:${port}`;
    const socket = netConnect({ host: proxy.hostname.replace(/^\[|\]$/g, ''), port: Number(proxy.port) || 80 });
    const fail = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(timeoutMs, () => fail(new EgressProxyError(`egress proxy: no answer to CONNECT within ${timeoutMs} ms`)));
    const onError = (error: NodeJS.ErrnoException) => fail(new EgressProxyError(`egress proxy unreachable: ${error.code ?? error.message}`));
    socket.once('error', onError);
    socket.once('connect', () => {
      const credentials = proxy.username ? `Proxy-Authorization: Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}\r\n` : '';
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${credentials}\r\n`);
    });
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16 * 1024) fail(new EgressProxyError('egress proxy: answer to CONNECT too long'));
        return;
      }
      socket.off('data', onData);
      const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
      if (status !== 200) return fail(new EgressProxyError(`egress proxy refused CONNECT: ${statusLine.slice(0, 100) || 'no status line'}`));
      socket.setTimeout(0);
      // From here the socket's errors reach whoever uses the tunnel (undici, or TLS over it).
      socket.off('error', onError);
      socket.on('error', () => undefined);
      // Whatever followed the answer already belongs to the tunnel.
      const rest = head.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    socket.on('data', onData);
  });
}

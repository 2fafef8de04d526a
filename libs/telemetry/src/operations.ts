// The operations port orchestrators and Prometheus talk to: /healthz (the process runs), /readyz (it can
// do its work: NATS connected, topology ensured, PostgreSQL reachable where needed), /metrics.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { telemetry } from './otel.js';

export interface OperationsServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startOperationsServer(options: { host: string; port: number; ready: () => boolean; notReadyReason?: () => string }): Promise<OperationsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path === '/healthz') return void response.end('ok\n');
    if (path === '/readyz') {
      const ready = options.ready();
      response.statusCode = ready ? 200 : 503;
      return void response.end(ready ? 'ready\n' : `not ready: ${options.notReadyReason?.() ?? 'starting'}\n`);
    }
    if (path === '/metrics') {
      const prometheus = telemetry().prometheus;
      if (prometheus) return prometheus.getMetricsRequestHandler(request, response);
      response.setHeader('content-type', 'text/plain');
      return void response.end('# telemetry is disabled (OTEL_SDK_DISABLED=true)\n');
    }
    response.statusCode = 404;
    response.end('not found\n');
  });
  await new Promise<void>((resolve) => server.listen(options.port, options.host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

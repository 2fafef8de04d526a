// The customer endpoint for benchmarks, in its own process: answers 200 (or hangs for the listed
// webhooks), records when each event arrived and from which client port (which tells the dispatcher
// replica that sent it apart, see startup.ts), and reports over IPC when asked.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const hangingPaths = new Set<string>();
const arrivals: { id: string; path: string; at: number; port: number }[] = [];

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const path = req.url ?? '';
    if (hangingPaths.has(path)) return; // never answered: the dispatcher's deadline ends it
    const id = (JSON.parse(Buffer.concat(chunks).toString()) as { id: string }).id;
    arrivals.push({ id, path, at: Date.now(), port: req.socket.remotePort ?? 0 });
    res.end('ok');
  });
});
server.keepAliveTimeout = 60_000;

process.on('message', (message: { kind: string; paths?: string[] }) => {
  if (message.kind === 'hang') for (const p of message.paths ?? []) hangingPaths.add(p);
  if (message.kind === 'report') process.send!({ kind: 'report', arrivals: arrivals.splice(0) });
  if (message.kind === 'stop') server.close(() => process.exit(0));
});

server.listen(0, '127.0.0.1', () => process.send!({ kind: 'listening', port: (server.address() as AddressInfo).port }));

// What every benchmark scenario shares: the receiver process (the customer's endpoint), a bounded pool of
// workers, waiting for arrivals, the body an endpoint receives, and CPU seconds read from /proc.
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Event } from '@webhooks/contracts';
import type { RunningSystem } from '@webhooks/testing';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * One request the receiver answered: the event id from its body, its path, when it arrived, and the
 * client's port (the sender's end of the connection, which /proc maps to the process that holds it).
 */
export interface Arrival { id: string; path: string; at: number; port: number }

export interface Receiver {
  child: ChildProcess;
  url: string;
  /** The arrivals since the last report (the receiver forgets them once reported). */
  report(): Promise<Arrival[]>;
  /** Requests to these paths are never answered from now on. */
  hang(paths: string[]): void;
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** CPU seconds each named process used between this call and the call of the returned function. */
export function processCpuMeter(pids: Record<string, number | undefined>): () => Record<string, number> {
  const start = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  return () => Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, +(cpuSeconds(pid) - start[name]!).toFixed(1)]));
}

/** CPU seconds of each PostgreSQL process (server, backends, helpers) alive now, by pid. */
function postgresCpuSeconds(): Map<number, number> {
  try {
    const pids = execFileSync('pgrep', ['-x', 'postgres']).toString().trim().split('\n').map(Number);
    return new Map(pids.map((pid) => [pid, cpuSeconds(pid) || 0]));
  } catch {
    return new Map();
  }
}

/**
 * processCpuMeter, with PostgreSQL counted as one more process: its processes alive at the end, each from
 * the start (or from its birth); a backend that ended in between is not counted.
 */
export function processAndPostgresCpuMeter(pids: Record<string, number | undefined>): () => Record<string, number> {
  const processes = processCpuMeter(pids);
  const postgresStart = postgresCpuSeconds();
  return () => {
    let postgresql = 0;
    for (const [pid, seconds] of postgresCpuSeconds()) postgresql += seconds - (postgresStart.get(pid) ?? 0);
    return { ...processes(), postgresql: +postgresql.toFixed(1) };
  };
}

export async function startReceiver(): Promise<Receiver> {
  const child = fork(join(here, 'receiver.ts'), { execArgv: ['--import', 'tsx'] });
  const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)));
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    hang: (paths) => child.send({ kind: 'hang', paths }),
    report: () =>
      new Promise((resolve) => {
        child.once('message', (m: { arrivals: Arrival[] }) => resolve(m.arrivals));
        child.send({ kind: 'report' });
      }),
  };
}

/** Runs `work` over `items` with at most `concurrency` calls in flight. */
export async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

/** Collects arrivals until `count` came or `timeoutMs` passed (then returns what came). */
export async function waitForArrivals(receiver: Receiver, count: number, timeoutMs: number): Promise<Arrival[]> {
  const all: Arrival[] = [];
  const deadline = Date.now() + timeoutMs;
  while (all.length < count && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    all.push(...(await receiver.report()));
  }
  return all;
}

/** The event every scenario publishes: a WhatsApp message from a contact (about 600 bytes delivered). */
export function sampleEvent(id: string, workspaceId: string): Event {
  return {
    id, workspaceId, type: 'message.incoming', occurredAt: new Date(),
    data: { $case: 'messageIncoming', value: {
      contact: { id: 'c_1', firstName: 'Ana', lastName: 'Lima', email: 'ana@example.com', phone: '+5511999999999', language: 'pt', countryCode: 'BR', profilePicUrl: '', assignee: undefined, tags: ['lead'], customFields: {}, createdAt: undefined, updatedAt: undefined },
      message: { id: `m_${id}`, channelMessageId: '', text: 'Hello, I would like to know more about your plans.', attachments: [], sender: undefined, status: 'received', sentAt: new Date() },
      channel: { id: 'ch_1', name: 'WhatsApp', source: 'whatsapp' }, conversationId: 'conv_1' } },
  };
}

/** Samples read off every running service's /metrics: by service name, by metric, summed over labels and replicas. */
export type ServiceMetrics = Record<string, Record<string, number>>;

/** The NATS client's own count of messages a service sent and received (connection-metrics.ts). */
export const natsMessagesMetric = 'nats_client_messages_total';

/**
 * The samples of `names` (Prometheus names) on every running service's /metrics, each summed over its
 * labels and the service's replicas. Undefined when a service cannot be read.
 */
export async function serviceMetrics(system: RunningSystem, names: readonly string[]): Promise<ServiceMetrics | undefined> {
  try {
    const byService: ServiceMetrics = {};
    for (const [name, services] of system.services) {
      for (const service of services) {
        if (!service.running) continue;
        const text = await (await fetch(`http://${service.address('opsPort')}/metrics`)).text();
        const sums = (byService[name] ??= {});
        for (const line of text.split('\n')) {
          const metric = names.find((n) => line.startsWith(`${n}{`) || line.startsWith(`${n} `));
          if (metric) sums[metric] = (sums[metric] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
        }
      }
    }
    return byService;
  } catch {
    return undefined;
  }
}

/**
 * NATS messages per delivery between two reads of serviceMetrics that include natsMessagesMetric: in
 * all, and by service (those above 0.05). Per delivery they show what a change costs the NATS server,
 * in counts that do not move with the machine's speed.
 */
export function natsPerDelivery(before: ServiceMetrics | undefined, after: ServiceMetrics | undefined, delivered: number): { natsMessagesPerDelivery?: number; natsByService?: string } {
  if (!before || !after || delivered <= 0) return {};
  const perService = Object.entries(after).map(([name, metrics]) => [name, ((metrics[natsMessagesMetric] ?? 0) - (before[name]?.[natsMessagesMetric] ?? 0)) / delivered] as const);
  const total = perService.reduce((sum, [, count]) => sum + count, 0);
  return {
    natsMessagesPerDelivery: +total.toFixed(2),
    natsByService: perService.filter(([, count]) => count >= 0.05).map(([name, count]) => `${name} ${count.toFixed(1)}`).join(', '),
  };
}

// Load scenarios run on demand (not in CI): a burst of 100,000 events (acceptance rate through
// PublishEvents and the time until all are delivered), and a soak at a steady rate over 1,000 webhooks
// (latency percentiles per minute, memory of every process at start and end).
//   BENCH_SCENARIOS=burst npm run bench      BENCH_BURST_EVENTS (100000), BENCH_BURST_WEBHOOKS (100)
//   BENCH_SCENARIOS=soak npm run bench       BENCH_SOAK_MINUTES (10), BENCH_SOAK_RATE (events/s, 500), BENCH_SOAK_WEBHOOKS (1000),
//                                            BENCH_SOAK_TICK_MS (5: events go out evenly, what the rate owes every 5 ms,
//                                            open loop; 100 sends bursts of 50 at 500/s, as earlier versions did),
//                                            BENCH_SOAK_WARMUP_S (10: a first period on a row of its own, before the minutes)
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebhooksClient } from '@webhooks/client';
import { CreateWebhookRequest, Plan, type Event } from '@webhooks/contracts';
import { startSystem, testToken, type RunningSystem } from '@webhooks/testing';
import { percentile } from './stats.js';


function rssMb(pid: number | undefined): number {
  try {
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);
  } catch {
    return NaN;
  }
}

function memory(system: RunningSystem): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, list] of system.services) out[name] = rssMb(list[0]?.pid);
  try {
    out['nats-server'] = rssMb(Number(execFileSync('pgrep', ['-o', '-x', 'nats-server']).toString().trim()));
  } catch {
    // not on this machine
  }
  return out;
}

/** An endpoint in this process that counts arrivals and latency (the bench process is the only client). */
async function endpoint(onArrival: (id: string) => void): Promise<{ url: string; close(): void }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      onArrival((JSON.parse(Buffer.concat(chunks).toString()) as { id: string }).id);
      res.end('ok');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

function event(id: string, workspaceId: string): Event {
  return { id, workspaceId, type: 'message.incoming', occurredAt: new Date(), data: { $case: 'messageIncoming', value: { contact: undefined, channel: undefined, conversationId: 'c', message: { id: `m_${id}`, channelMessageId: '', text: 'Hello, is this still available?', attachments: [], sender: undefined, status: 'received', sentAt: new Date() } } } };
}

async function setUp(system: RunningSystem, client: WebhooksClient, url: string, count: number, run: string): Promise<string[]> {
  const workspaces: string[] = [];
  for (let i = 0; i < count; i++) {
    const workspaceId = `${run}_${i}`;
    await client.upsertWorkspace({ workspace: { id: workspaceId, name: 'load', plan: Plan.PLAN_ENTERPRISE, notificationEmails: [], createTime: undefined, updateTime: undefined } });
    // fromPartial: the request's optional settings keep their defaults as the contract gains new ones.
    await client.createWebhook(CreateWebhookRequest.fromPartial({ workspaceId, name: 'load', url: `${url}/${i}`, eventTypes: ['message.incoming'], headers: {} }));
    workspaces.push(workspaceId);
  }
  await new Promise((r) => setTimeout(r, 2_000 + count * 2));
  return workspaces;
}

function clientFor(system: RunningSystem): WebhooksClient {
  return new WebhooksClient({ subscriptionAddress: system.services.get('subscription')![0]!.address(), ingestAddress: system.services.get('event-ingest')![0]!.address(), token: testToken, deadlineMs: 30_000 });
}

export async function runBurst(): Promise<Record<string, unknown>> {
  const total = Number(process.env.BENCH_BURST_EVENTS ?? 100_000);
  const webhookCount = Number(process.env.BENCH_BURST_WEBHOOKS ?? 100);
  const system = await startSystem({ MAX_WEBHOOKS_PER_WORKSPACE: '1000' });
  const client = clientFor(system);
  let arrived = 0;
  const target = await endpoint(() => arrived++);
  try {
    const workspaces = await setUp(system, client, target.url, webhookCount, `burst${Date.now().toString(36)}`);
    const memoryBefore = memory(system);
    const batch = 500;
    const batches: Event[][] = [];
    for (let start = 0; start < total; start += batch) {
      const workspaceId = workspaces[(start / batch) % workspaces.length]!;
      batches.push(Array.from({ length: Math.min(batch, total - start) }, (_, i) => event(`b${start + i}`, workspaceId)));
    }
    const started = Date.now();
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < batches.length) await client.publishEvents({ events: batches[next++]! });
    }));
    const acceptedMs = Date.now() - started;
    while (arrived < total) await new Promise((r) => setTimeout(r, 200));
    const drainedMs = Date.now() - started;
    const result = { scenario: 'burst', events: total, webhooks: webhookCount, acceptedPerSecond: Math.round(total / (acceptedMs / 1000)), acceptSeconds: +(acceptedMs / 1000).toFixed(1), drainSeconds: +(drainedMs / 1000).toFixed(1), deliveredPerSecond: Math.round(total / (drainedMs / 1000)), memoryBefore, memoryAfter: memory(system) };
    console.log(JSON.stringify(result, null, 2));
    return result;
  } finally {
    client.close();
    target.close();
    await system.stop();
  }
}

export async function runSoak(): Promise<Record<string, unknown>> {
  const minutes = Number(process.env.BENCH_SOAK_MINUTES ?? 10);
  const rate = Number(process.env.BENCH_SOAK_RATE ?? 500);
  const webhookCount = Number(process.env.BENCH_SOAK_WEBHOOKS ?? 1000);
  const tickMs = Number(process.env.BENCH_SOAK_TICK_MS ?? 5);
  const warmupMs = Number(process.env.BENCH_SOAK_WARMUP_S ?? 10) * 1000;
  const system = await startSystem({ MAX_WEBHOOKS_PER_WORKSPACE: '1000' });
  const client = clientFor(system);
  const sentAt = new Map<string, number>();
  let minute: number[] = [];
  /** How long each PublishEvent call of the period took, answer included (ingest's share of the latency). */
  let calls: number[] = [];
  const target = await endpoint((id) => {
    const at = sentAt.get(id);
    if (at !== undefined) minute.push(Date.now() - at);
    sentAt.delete(id);
  });
  try {
    const workspaces = await setUp(system, client, target.url, webhookCount, `soak${Date.now().toString(36)}`);
    const memoryStart = memory(system);
    const perMinute: Record<string, unknown>[] = [];
    // A first period, reported on its own row, in which every process compiles its hot code and opens its
    // connections; the minutes are counted after it.
    const end = Date.now() + warmupMs + minutes * 60_000;
    let n = 0;
    let failed = 0;
    let periodEnds = Date.now() + (warmupMs > 0 ? warmupMs : 60_000);
    // Open loop, paced evenly: every tick sends what the rate owes by then, without waiting for earlier
    // calls (a slow answer must not hold the next events back and hide its own delay).
    const started = Date.now();
    const inFlight = new Set<Promise<unknown>>();
    while (Date.now() < end) {
      const due = Math.floor(((Date.now() - started) * rate) / 1000) - n;
      for (let i = 0; i < due; i++) {
        const id = `s${n}`;
        const workspaceId = workspaces[n++ % workspaces.length]!;
        const callStarted = performance.now();
        sentAt.set(id, Date.now());
        const call: Promise<unknown> = client.publishEvent({ event: event(id, workspaceId) }).then(
          () => calls.push(performance.now() - callStarted),
          () => failed++,
        );
        inFlight.add(call);
        void call.finally(() => inFlight.delete(call));
      }
      await new Promise((r) => setTimeout(r, tickMs));
      if (Date.now() >= periodEnds) {
        const sorted = minute.sort((a, b) => a - b);
        const answered = calls.sort((a, b) => a - b);
        const label = warmupMs > 0 && perMinute.length === 0 ? `warm-up (${warmupMs / 1000} s)` : perMinute.length + (warmupMs > 0 ? 0 : 1);
        perMinute.push({
          minute: label, delivered: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99),
          publishP50: +percentile(answered, 50).toFixed(1), publishP95: +percentile(answered, 95).toFixed(1), publishP99: +percentile(answered, 99).toFixed(1), rss: memory(system),
        });
        console.log(JSON.stringify(perMinute.at(-1)));
        minute = [];
        calls = [];
        periodEnds += 60_000;
      }
    }
    await Promise.all(inFlight);
    const result = { scenario: 'soak', minutes, rate, tickMs, warmupMs, webhooks: webhookCount, sent: n, failed, undelivered: sentAt.size, perMinute, memoryStart, memoryEnd: memory(system) };
    console.table(perMinute.map(({ rss: _rss, ...row }) => row));
    console.log(JSON.stringify({ memoryStart: result.memoryStart, memoryEnd: result.memoryEnd, undelivered: result.undelivered }));
    return result;
  } finally {
    client.close();
    target.close();
    await system.stop();
  }
}

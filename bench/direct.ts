// The direct ceiling: the same receiver hit from the bench process with the body our endpoints get, no
// queue, no signing. What the pipeline's deliveries per second are compared with.
import { acceptEvent } from '@webhooks/domain';
import { Agent, request } from 'undici';
import { pool, sampleEvent } from './harness.js';
import { percentile } from './stats.js';

/**
 * `events` POSTs spread over `webhooks` paths, one in flight per webhook up to `publishers`, over as
 * many keep-alive sockets. Bounded: a socket per webhook ran out of file descriptors at 10,000 webhooks
 * (EMFILE wherever `ulimit -n` is below about 10,000), and past a few dozen sockets two cores deliver
 * no faster.
 */
export async function direct(receiverUrl: string, webhooks: number, events: number, publishers: number) {
  const concurrency = Math.min(webhooks, publishers);
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: concurrency });
  const template = acceptEvent(sampleEvent('d_template', 'bench_direct'), new Date(), Number.MAX_SAFE_INTEGER).body.toString();
  const latencies: number[] = [];
  const started = Date.now();
  try {
    await pool(Array.from({ length: events }, (_, i) => i), concurrency, async (i) => {
      const t = Date.now();
      // Only the first occurrence is the event id ("m_d_template" is the message id).
      const body = template.replace('"d_template"', `"d${i}"`);
      const res = await request(`${receiverUrl}/direct/${i % webhooks}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, dispatcher: agent });
      await res.body.dump();
      latencies.push(Date.now() - t);
    });
  } finally {
    await agent.close();
  }
  const seconds = (Date.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { concurrency, requestsPerSecond: Math.round(events / seconds), p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

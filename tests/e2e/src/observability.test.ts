// One trace per event across processes, and metrics that move by the right amounts. The services export
// spans over OTLP/HTTP (JSON encoding) to a receiver inside the test.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { callUnary, HttpReceiver, startSystem, testToken, type RunningSystem } from '@webhooks/testing';
import { contactCreated, publish, succeededDeliveries, workspaceWithWebhook } from './support.js';

interface OtlpSpan { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: { key: string; value: Record<string, unknown> }[]; links?: { traceId: string; spanId: string }[] }

class OtlpReceiver {
  readonly spans: (OtlpSpan & { service: string })[] = [];
  private constructor(private readonly server: Server) {}

  static async start(): Promise<OtlpReceiver> {
    const server = createServer();
    const receiver = new OtlpReceiver(server);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/v1/traces') {
          const body = JSON.parse(Buffer.concat(chunks).toString()) as { resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
          for (const rs of body.resourceSpans) {
            const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
            for (const ss of rs.scopeSpans) for (const span of ss.spans) receiver.spans.push({ ...span, service });
          }
        }
        res.setHeader('content-type', 'application/json');
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** An attribute's value as a string, whatever type OTLP/JSON gave it. */
const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return value ? String(value.stringValue ?? value.intValue ?? value.boolValue) : undefined;
};

async function scrape(url: string): Promise<string> {
  return (await fetch(url)).text();
}

/** The sum of a Prometheus metric's samples whose labels include all of `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

describe('observability', () => {
  let otlp: OtlpReceiver;
  let system: RunningSystem;
  let endpoint: HttpReceiver;

  before(async () => {
    otlp = await OtlpReceiver.start();
    endpoint = await HttpReceiver.start((_req, res, index) => {
      res.statusCode = index === 0 ? 503 : 200;
      res.end();
    });
    system = await startSystem({
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      RETRY_DELAYS: '100ms,100ms,100ms',
    });
  });

  after(async () => {
    await system?.stop();
    await endpoint?.close();
    await otlp?.close();
  });

  it('follows one event from the gRPC call through both attempts to the log in a single trace', async () => {
    const { workspaceId } = await workspaceWithWebhook(system, endpoint.url);
    await publish(system, contactCreated('traced_1', workspaceId));
    await endpoint.waitForRequests(2);

    const deadline = Date.now() + 20_000;
    type Received = OtlpReceiver['spans'][number];
    let attempts: Received[] = [];
    let ingest: Received | undefined;
    let persisted: Received[] = [];
    while (Date.now() < deadline) {
      attempts = otlp.spans.filter((s) => s.name === 'webhook.attempt' && attribute(s, 'event.id') === 'traced_1');
      ingest = otlp.spans.find((s) => s.service === 'event-ingest' && s.name.endsWith('IngestService/PublishEvent') && attempts[0] && s.traceId === attempts[0].traceId);
      persisted = otlp.spans.filter((s) => s.name === 'attempt_log.persist' && attempts.some((a) => a.spanId === s.parentSpanId));
      if (ingest && attempts.length === 2 && persisted.length === 2) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(ingest, 'no ingest span in the trace');
    assert.equal(attempts.length, 2);
    for (const attempt of attempts) {
      assert.equal(attempt.traceId, ingest!.traceId);
      assert.equal(attempt.parentSpanId, ingest!.spanId, 'an attempt span is not a child of the ingest span');
      assert.equal(otlp.spans.find((s) => s.spanId === attempt.spanId)?.service, 'dispatcher');
    }
    assert.deepEqual(attempts.map((a) => [attribute(a, 'webhook.attempt'), attribute(a, 'webhook.decision')]).sort(), [[1, 'retry'], [2, 'succeeded']].map(([n, d]) => [String(n), d]).sort());
    assert.equal(persisted.length, 2);
    for (const span of persisted) {
      assert.equal(span.traceId, ingest!.traceId);
      assert.equal(span.service, 'subscription');
    }
    // Log lines written inside the attempt carry its trace and span ids.
    const [dispatcherProcess] = system.services.get('dispatcher')!;
    const logged = dispatcherProcess!.logs.find((l) => l.msg === 'attempt failed, will retry' && l.eventId === 'traced_1');
    assert.equal(logged?.trace_id, ingest!.traceId);
    assert.ok(attempts.some((a) => a.spanId === logged?.span_id));
    // The outbound HTTP calls are children of their attempts.
    const http = otlp.spans.filter((s) => s.service === 'dispatcher' && attempts.some((a) => a.spanId === s.parentSpanId) && s.name !== 'webhook.attempt');
    assert.ok(http.length >= 2, `expected the HTTP client spans under the attempts, got ${http.map((s) => s.name).join(', ')}`);
  });

  it("starts the portal's own trace for each API request and links the browser's traceparent instead of continuing it", async () => {
    const portal = await system.startService('portal', { PORTAL_HTTP_PORT: '0', PORTAL_OPS_PORT: '0', PORTAL_API_TOKEN: testToken });
    const { workspaceId } = await workspaceWithWebhook(system, endpoint.url);
    const { token } = await callUnary(system.subscription, system.subscription.createPortalSession, { workspaceId, ttl: undefined }, testToken);
    const hex = (bytes: number) => randomBytes(bytes).toString('hex');
    // One browser context sampled, one not: neither may decide for the portal.
    const browser = [{ traceId: hex(16), spanId: hex(8), flags: '01' }, { traceId: hex(16), spanId: hex(8), flags: '00' }];
    for (const context of browser) {
      const response = await fetch(`http://127.0.0.1:${portal.port('httpPort')}/api/webhooks`, { headers: { authorization: `Bearer ${token}`, traceparent: `00-${context.traceId}-${context.spanId}-${context.flags}` } });
      assert.equal(response.status, 200);
    }
    const linkedTo = (traceId: string) => otlp.spans.find((s) => s.service === 'portal' && s.name === 'portal GET /webhooks' && s.links?.some((l) => l.traceId === traceId));
    const deadline = Date.now() + 20_000;
    const childOf = (span: OtlpSpan | undefined) => !!span && otlp.spans.some((s) => s.service === 'portal' && s.parentSpanId === span.spanId && s.traceId === span.traceId);
    while (Date.now() < deadline && !browser.every((c) => childOf(linkedTo(c.traceId)))) await new Promise((r) => setTimeout(r, 200));
    for (const context of browser) {
      const span = linkedTo(context.traceId);
      // Before, the portal's span continued the browser's trace (and was not recorded at all when the browser said "not sampled").
      assert.ok(span, `a portal span linked to the browser's context (flags ${context.flags}); portal spans: ${JSON.stringify(otlp.spans.filter((s) => s.service === 'portal').map((s) => [s.name, s.traceId, s.parentSpanId]))}`);
      assert.notEqual(span.traceId, context.traceId, 'the portal chose its own trace id');
      assert.ok(!span.parentSpanId, 'the portal span is a root, not a child of the browser span');
      assert.deepEqual(span.links!.map((l) => [l.traceId, l.spanId]), [[context.traceId, context.spanId]]);
      // The gRPC call behind it belongs to the portal's trace.
      assert.ok(childOf(span), 'the gRPC client span is a child of the portal span');
    }
  });

  it('counts attempts, deliveries, accepted and rejected events on /metrics, and answers /healthz and /readyz', async () => {
    const dispatcher = system.services.get('dispatcher')![0]!;
    const ingest = system.services.get('event-ingest')![0]!;
    const metricsOf = (service: typeof dispatcher) => scrape(`http://127.0.0.1:${service.port('opsPort')}/metrics`);
    const before = { d: await metricsOf(dispatcher), i: await metricsOf(ingest) };

    const healthy = await HttpReceiver.start();
    const { workspaceId } = await workspaceWithWebhook(system, healthy.url);
    await publish(system, contactCreated('counted_1', workspaceId));
    await publish(system, contactCreated('counted_2', workspaceId));
    await callUnary(system.ingest, system.ingest.publishEvent, { event: { ...contactCreated('bad', workspaceId), id: '' } }, testToken).catch(() => undefined);
    await healthy.waitForRequests(2);
    assert.equal((await succeededDeliveries(system, workspaceId, 2)).length, 2);
    const after = { d: await metricsOf(dispatcher), i: await metricsOf(ingest) };
    await healthy.close();
    const delta = (which: 'd' | 'i', name: string, labels: Record<string, string> = {}) => sample(after[which], name, labels) - sample(before[which], name, labels);
    assert.equal(delta('d', 'webhook_attempts_total', { outcome: 'succeeded' }), 2);
    assert.equal(delta('d', 'webhook_attempts_total', { outcome: 'failed' }), 0);
    assert.equal(delta('d', 'webhook_deliveries_total', { result: 'succeeded' }), 2);
    assert.equal(delta('d', 'webhook_delivery_latency_seconds_count'), 2);
    assert.equal(delta('d', 'webhook_attempt_duration_seconds_count', { outcome: 'succeeded' }), 2);
    assert.equal(delta('i', 'webhook_events_accepted_total'), 2);
    assert.equal(delta('i', 'webhook_events_rejected_total', { reason: 'invalid-argument' }), 1);
    assert.match(after.d, /webhook_stream_messages\{[^}]*stream="/);
    // The NATS client's own counts: two accepted events cost ingest at least a lookup, a task and a record
    // each; two deliveries cost the dispatcher at least a stored record batch and two acks.
    assert.ok(delta('i', 'nats_client_messages_total', { direction: 'out' }) >= 6, 'ingest counted its NATS messages');
    assert.ok(delta('d', 'nats_client_messages_total', { direction: 'out' }) >= 3, 'the dispatcher counted its NATS messages');
    assert.ok(delta('d', 'nats_client_messages_total', { direction: 'in' }) >= 2, 'the dispatcher counted the tasks it received');
    assert.ok(delta('i', 'nats_client_bytes_total', { direction: 'out' }) > 0);

    for (const service of [dispatcher, ingest, system.services.get('subscription')![0]!, system.services.get('notifier')![0]!]) {
      const base = `http://127.0.0.1:${service.port('opsPort')}`;
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      assert.equal((await fetch(`${base}/readyz`)).status, 200, `${service.name} is not ready`);
    }
  });
});

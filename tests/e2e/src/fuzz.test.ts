// Hostile input on every public RPC: thousands of random, truncated, mistyped, huge, deeply nested,
// invalid-UTF-8 and oversize requests, raw on the wire. Each gets a gRPC status, no service dies, and
// memory stays bounded.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { CreateWebhookRequest, Event, PublishEventRequest, UpsertWorkspaceRequest, type Plan } from '@webhooks/contracts';
import { startSystem, testToken, type RunningSystem } from '@webhooks/testing';

const rpcs: Record<string, string[]> = {
  'webhooks.v1.SubscriptionService': ['UpsertWorkspace', 'GetWorkspace', 'CreateWebhook', 'GetWebhook', 'ListWebhooks', 'UpdateWebhook', 'DeleteWebhook', 'ActivateWebhook', 'DeactivateWebhook', 'RotateWebhookSecret', 'ListEventTypes', 'ListWebhookActivity'],
  'webhooks.v1.DeliveryLogService': ['ListDeliveries', 'GetDelivery', 'RetryDelivery', 'SendTestEvent', 'ListWebhookHealth'],
  'webhooks.v1.IngestService': ['PublishEvent', 'PublishEvents'],
};

/** Length-delimited protobuf field: tag (field << 3 | 2), varint length, bytes. */
function field(number: number, bytes: Uint8Array): Buffer {
  const varint = (n: number) => {
    const out: number[] = [];
    while (n > 127) {
      out.push((n & 127) | 128);
      n >>>= 7;
    }
    out.push(n);
    return Buffer.from(out);
  };
  return Buffer.concat([varint((number << 3) | 2), varint(bytes.length), Buffer.from(bytes)]);
}

function deep(depth: number): Buffer {
  // Field 1 nested in itself: message inside message inside message...
  let inner: Buffer = Buffer.from('x');
  for (let i = 0; i < depth; i++) inner = field(1, inner);
  return inner;
}

const invalidUtf8 = Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc]);

function payloads(i: number): Buffer {
  switch (i % 10) {
    case 0: return randomBytes(Math.floor(Math.random() * 512));
    case 1: return Buffer.from(PublishEventRequest.encode({ event: Event.fromPartial({ id: 'x'.repeat(10_000 + i), workspaceId: 'ws', type: 'contact.created' }) }).finish());
    case 2: return Buffer.from(UpsertWorkspaceRequest.encode({ workspace: { id: 'ws', name: 'n'.repeat(100_000), plan: 99 as Plan, notificationEmails: Array.from({ length: 500 }, () => 'a@b.c'), createTime: undefined, updateTime: undefined } }).finish());
    case 3: return Buffer.concat([field(1, invalidUtf8), field(2, invalidUtf8), field(3, invalidUtf8), field(4, invalidUtf8)]);
    case 4: return deep(50 + (i % 200));
    case 5: return Buffer.from(CreateWebhookRequest.encode({ workspaceId: 'ws', name: '', url: `https://${'a'.repeat(5000)}.example`, eventTypes: Array.from({ length: 100 }, (_, n) => `type.${n}`), headers: { 'Host': 'x', 'x\r\ny': 'z' }, auth: undefined }).finish()).subarray(0, 40 + (i % 100));
    case 6: return Buffer.from([0x08, 0x96, 0x01, 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]); // a length far beyond the buffer
    case 7: return Buffer.alloc(0);
    case 8: return field(1, randomBytes(1024));
    default: return Buffer.concat(Array.from({ length: 20 }, (_, n) => field(n + 1, randomBytes(64))));
  }
}

function rssMb(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

describe('hostile input on every public RPC', () => {
  let system: RunningSystem;

  before(async () => {
    system = await startSystem();
  });

  after(async () => {
    await system?.stop();
  });

  it('answers every malformed request with a status, keeps every service up, and keeps memory bounded', async () => {
    const subscription = system.services.get('subscription')![0]!;
    const ingest = system.services.get('event-ingest')![0]!;
    const address = { 'webhooks.v1.SubscriptionService': subscription.address(), 'webhooks.v1.DeliveryLogService': subscription.address(), 'webhooks.v1.IngestService': ingest.address() } as Record<string, string>;
    const clients = Object.fromEntries(Object.entries(address).map(([service, addr]) => [service, new Client(addr, credentials.createInsecure(), { 'grpc.max_send_message_length': 64 * 1024 * 1024 })]));
    const before = { subscription: rssMb(subscription.pid), ingest: rssMb(ingest.pid) };
    const codes = new Map<number, number>();
    const calls: { service: string; method: string; payload: Buffer; token?: string }[] = [];
    let n = 0;
    for (let round = 0; round < 130; round++) {
      for (const [service, methods] of Object.entries(rpcs)) {
        for (const method of methods) calls.push({ service, method, payload: payloads(n++), token: n % 13 === 0 ? undefined : testToken });
      }
    }
    // Oversize: beyond the 4 MiB the control plane accepts, and beyond what ingest accepts.
    for (const method of ['UpsertWorkspace', 'CreateWebhook']) calls.push({ service: 'webhooks.v1.SubscriptionService', method, payload: field(1, randomBytes(5 * 1024 * 1024)), token: testToken });
    calls.push({ service: 'webhooks.v1.IngestService', method: 'PublishEvents', payload: field(1, randomBytes(40 * 1024 * 1024)), token: testToken });

    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < calls.length) {
        const call = calls[next++]!;
        const metadata = new Metadata();
        if (call.token) metadata.set('authorization', `Bearer ${call.token}`);
        const code = await new Promise<number>((resolve) => {
          clients[call.service]!.makeUnaryRequest(`/${call.service}/${call.method}`, (b: Buffer) => b, (b: Buffer) => b, call.payload, metadata, { deadline: new Date(Date.now() + 20_000) }, (error: ServiceError | null) => resolve(error ? error.code : 0));
        });
        assert.equal(typeof code, 'number');
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }));
    // The server stream (WatchActivity): a request that decodes into a valid watch stays open by design, so
    // each gets 1 s and is then cancelled by its deadline; every other one ends at once with a status.
    const streamCodes = new Map<number, number>();
    await Promise.all(Array.from({ length: 8 }, async (_, lane) => {
      for (let i = lane; i < 160; i += 8) {
        const metadata = new Metadata();
        if (i % 13 !== 0) metadata.set('authorization', `Bearer ${testToken}`);
        const code = await new Promise<number>((resolve) => {
          const stream = clients['webhooks.v1.SubscriptionService']!.makeServerStreamRequest('/webhooks.v1.SubscriptionService/WatchActivity', (b: Buffer) => b, (b: Buffer) => b, payloads(i), metadata, { deadline: new Date(Date.now() + 1_000) });
          stream.on('data', () => {});
          stream.on('error', (error: ServiceError) => resolve(error.code));
          stream.on('end', () => resolve(0));
        });
        streamCodes.set(code, (streamCodes.get(code) ?? 0) + 1);
      }
    }));
    for (const client of Object.values(clients)) client.close();
    for (const code of [13, 14]) assert.equal(streamCodes.get(code) ?? 0, 0, `WatchActivity answers: ${JSON.stringify([...streamCodes])}`);
    assert.ok((streamCodes.get(3) ?? 0) > 0 && (streamCodes.get(16) ?? 0) > 0, `expected INVALID_ARGUMENT and UNAUTHENTICATED among WatchActivity's ${JSON.stringify([...streamCodes])}`);

    assert.ok(calls.length >= 2000, `only ${calls.length} calls`);
    // Every request got an answer: a status code, never a dropped connection without one (UNAVAILABLE 14
    // would mean a service went away) and never a hang (DEADLINE_EXCEEDED 4).
    assert.equal(codes.get(14) ?? 0, 0, `UNAVAILABLE answers: ${JSON.stringify([...codes])}`);
    assert.equal(codes.get(4) ?? 0, 0, `DEADLINE_EXCEEDED answers: ${JSON.stringify([...codes])}`);
    // Undecodable or nonsensical requests are the caller's fault: never INTERNAL.
    assert.equal(codes.get(13) ?? 0, 0, `INTERNAL answers: ${JSON.stringify([...codes])}`);
    assert.ok((codes.get(3) ?? 0) > 0 && (codes.get(16) ?? 0) > 0 && (codes.get(8) ?? 0) > 0, `expected INVALID_ARGUMENT, UNAUTHENTICATED and RESOURCE_EXHAUSTED among ${JSON.stringify([...codes])}`);
    for (const service of system.services.values()) for (const process of service) assert.equal(process.logs.some((l) => l.level === 'fatal'), false, `${process.name} logged a fatal error`);
    // Still serving, and memory bounded (no growth of more than 200 MB from thousands of requests).
    const after = { subscription: rssMb(subscription.pid), ingest: rssMb(ingest.pid) };
    assert.ok(after.subscription - before.subscription < 200, `subscription grew from ${before.subscription} to ${after.subscription} MB`);
    assert.ok(after.ingest - before.ingest < 200, `ingest grew from ${before.ingest} to ${after.ingest} MB`);
    const stillThere = await fetch(`http://127.0.0.1:${subscription.port('opsPort')}/readyz`);
    assert.equal(stillThere.status, 200);
    console.log(`fuzz: ${calls.length} requests, status codes ${JSON.stringify(Object.fromEntries(codes))}, rss subscription ${before.subscription.toFixed(0)}->${after.subscription.toFixed(0)} MB, ingest ${before.ingest.toFixed(0)}->${after.ingest.toFixed(0)} MB`);
  });
});

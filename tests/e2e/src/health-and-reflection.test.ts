// Every service answers the standard gRPC health check, and serves reflection so grpcurl-like tools
// work without the proto files.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials, loadPackageDefinition, type Client, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { startSystem, type RunningSystem } from '@webhooks/testing';

const require = createRequire(import.meta.url);
const healthProto = join(dirname(require.resolve('grpc-health-check/package.json')), 'proto/health/v1/health.proto');
const reflectionProto = join(dirname(require.resolve('@grpc/reflection/package.json')), 'build/proto/grpc/reflection/v1/reflection.proto');

function clientOf(protoPath: string, servicePath: string[], address: string): Client {
  let node = loadPackageDefinition(loadSync(protoPath, { keepCase: true, enums: String })) as GrpcObject;
  for (const part of servicePath.slice(0, -1)) node = node[part] as GrpcObject;
  const Service = node[servicePath.at(-1)!] as ServiceClientConstructor;
  return new Service(address, credentials.createInsecure());
}

describe('health and reflection', () => {
  let system: RunningSystem;

  before(async () => {
    system = await startSystem();
  });

  after(async () => {
    await system?.stop();
  });

  it('reports SERVING on every service', async () => {
    for (const [name, [service]] of system.services) {
      const health = clientOf(healthProto, ['grpc', 'health', 'v1', 'Health'], service!.address());
      const response = await new Promise<{ status: string }>((resolve, reject) =>
        (health as unknown as { Check: (req: object, cb: (e: Error | null, r: { status: string }) => void) => void }).Check({ service: '' }, (e, r) => (e ? reject(e) : resolve(r))),
      );
      assert.equal(response.status, 'SERVING', name);
      health.close();
    }
  });

  it('lists the public services and describes their messages through reflection', async () => {
    const expected: Record<string, string[]> = {
      subscription: ['webhooks.v1.SubscriptionService', 'webhooks.v1.DeliveryLogService'],
      'event-ingest': ['webhooks.v1.IngestService'],
    };
    for (const [name, services] of Object.entries(expected)) {
      const [service] = system.services.get(name as 'subscription')!;
      const reflection = clientOf(reflectionProto, ['grpc', 'reflection', 'v1', 'ServerReflection'], service!.address());
      const call = (reflection as unknown as { ServerReflectionInfo: () => NodeJS.ReadWriteStream & { write(m: object): void; end(): void } }).ServerReflectionInfo();
      const answers: { list_services_response?: { service: { name: string }[] }; file_descriptor_response?: { file_descriptor_proto: Buffer[] } }[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (m: (typeof answers)[number]) => answers.push(m));
        call.on('end', resolve);
        call.on('error', reject);
      });
      call.write({ list_services: '' });
      call.write({ file_containing_symbol: services[0] });
      call.end();
      await done;
      const listed = answers[0]!.list_services_response!.service.map((s) => s.name);
      for (const s of [...services, 'grpc.health.v1.Health']) assert.ok(listed.includes(s), `${name} does not list ${s}: ${listed.join(', ')}`);
      assert.ok(answers[1]!.file_descriptor_response!.file_descriptor_proto.length > 0, `${name} returned no file descriptor for ${services[0]}`);
      reflection.close();
    }
  });
});

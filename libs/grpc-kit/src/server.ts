// A gRPC server with what every service exposes: grpc.health.v1.Health and server reflection.
import { dirname } from 'node:path';
import { Server, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoRoot, publicProtoFiles } from '@webhooks/contracts';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { serverCredentials, type ServerSecurity } from './tls.js';

export interface ServiceBinding {
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
}

export interface GrpcServerOptions {
  readonly host: string;
  /** 0 picks a free port; the bound port is returned. */
  readonly port: number;
  readonly services: readonly ServiceBinding[];
  /** TLS or plaintext, decided by serverSecurity() from the configuration (required, so no app forgets it). */
  readonly security: ServerSecurity;
  /** Largest request accepted, in bytes. */
  readonly maxReceiveBytes?: number;
}

export interface RunningGrpcServer {
  readonly port: number;
  readonly health: HealthImplementation;
  /** Marks the server NOT_SERVING, waits for calls in progress (up to graceMs), then closes. */
  shutdown(graceMs: number): Promise<void>;
}

let reflectionDefinition: ReturnType<typeof loadSync> | undefined;

function reflection(): ReflectionService {
  reflectionDefinition ??= loadSync([...publicProtoFiles, 'health.proto'], {
    includeDirs: [protoRoot, dirname(healthProtoPath)],
    keepCase: true,
  });
  return new ReflectionService(reflectionDefinition);
}

/** What a request that is not valid protobuf for its method decodes to; unary handlers answer INVALID_ARGUMENT. */
export class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/**
 * How a protobuf map entry whose key is "__proto__" starts on the wire: field 1, length-delimited, 9
 * bytes. The generated decoders assign map entries to plain objects, where that key sets nothing: the
 * entry (a custom header, a custom field) would vanish without a word. Such a request is refused instead.
 */
const protoKeyEntry = Buffer.from([0x0a, 0x09, ...Buffer.from('__proto__')]);

/**
 * grpc-js answers a request its deserializer throws on with INTERNAL, as if the server were at fault.
 * Decoding failures are the caller's: they become an UndecodableRequest for the handler to refuse, and so
 * does a map key the decoder would drop (protoKeyEntry).
 */
function guardDecoding(definition: ServiceDefinition): ServiceDefinition {
  return Object.fromEntries(
    Object.entries(definition).map(([name, method]) => [
      name,
      {
        ...method,
        requestDeserialize: (bytes: Buffer) => {
          try {
            if (bytes.includes(protoKeyEntry)) return new UndecodableRequest('"__proto__" cannot be a map key here (a custom header name or a custom field): it would be lost; use another name');
            return method.requestDeserialize(bytes);
          } catch (error) {
            return new UndecodableRequest((error as Error).message);
          }
        },
      },
    ]),
  ) as ServiceDefinition;
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const server = new Server({
    'grpc.max_receive_message_length': options.maxReceiveBytes ?? 4 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  for (const { definition, implementation } of options.services) server.addService(guardDecoding(definition), implementation);
  const health = new HealthImplementation({ '': 'NOT_SERVING' });
  health.addToServer(server);
  reflection().addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, serverCredentials(options.security), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    port,
    health,
    async shutdown(graceMs) {
      health.setStatus('', 'NOT_SERVING');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

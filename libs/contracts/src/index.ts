// The public face of the generated contracts: every message, enum and gRPC service of proto/webhooks/v1.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export * from './gen/webhooks/v1/events.js';
export * from './gen/webhooks/v1/subscription.js';
export * from './gen/webhooks/v1/ingest.js';
export * from './gen/webhooks/v1/delivery_log.js';
export * from './gen/webhooks/v1/bus.js';

/** The folder holding the .proto sources (shipped with the build), for server reflection. */
export const protoRoot = join(dirname(fileURLToPath(import.meta.url)), 'proto');

/** The proto files that define the public services, relative to protoRoot. */
export const publicProtoFiles = [
  'webhooks/v1/subscription.proto',
  'webhooks/v1/ingest.proto',
  'webhooks/v1/delivery_log.proto',
];

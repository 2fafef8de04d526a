// The public face of the generated contracts: every message, enum and gRPC service of proto/webhooks/v1.
export * from './gen/webhooks/v1/events.js';
export * from './gen/webhooks/v1/subscription.js';
export * from './gen/webhooks/v1/ingest.js';
export * from './gen/webhooks/v1/delivery_log.js';
export * from './gen/webhooks/v1/bus.js';

export { protoRoot } from './paths.js';
export { encodeMessage } from './encoding.js';
export { payloadJsonSchema } from './json-schema.js';

/** The proto files that define the public services, relative to protoRoot. */
export const publicProtoFiles = [
  'webhooks/v1/subscription.proto',
  'webhooks/v1/ingest.proto',
  'webhooks/v1/delivery_log.proto',
];

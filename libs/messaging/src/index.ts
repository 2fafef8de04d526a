// NATS JetStream for every service: the topology, its setup, and the routing-table mirror.
export * from './topology.js';
export * from './setup.js';
export * from './routing-table.js';
export type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
export { headers as natsHeaders } from '@nats-io/transport-node';
export type { KV } from '@nats-io/kv';
export { Kvm } from '@nats-io/kv';
export type { JetStreamClient, JetStreamManager, JsMsg, Consumer, ConsumerInfo, StoredMsg } from '@nats-io/jetstream';
export { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, JetStreamApiError } from '@nats-io/jetstream';
export * from './trace-context.js';
export * from './compare-and-set.js';
export { coalesceWrites } from './write-coalescing.js';
export { JetStreamPublisher, PublishError, type PubAck, type PublishOptions } from './publisher.js';
export { eachStored, readStored, type StoredMessage } from './stream-reading.js';
export { deleteStoredMessage, isMessageGone, isWriteConflict } from './repeatable-requests.js';

// Real things for tests, each with a unique name so parallel runs never meet: PostgreSQL databases,
// NATS topologies, HTTP receivers, and the built services started as processes.
export * from './names.js';
export * from './database.js';
export * from './nats.js';
export * from './http-receiver.js';
export * from './service-process.js';
export * from './grpc-client.js';
export * from './system.js';
export * from './attempts.js';
export * from './nats-server.js';
export * from './nats-cluster.js';
export * from './smtp-sink.js';
export * from './postgres-server.js';
export * from './tcp-proxy.js';
export * from './certificates.js';
export * from './connect-proxy.js';
export * from './wait.js';
export * from './faults.js';

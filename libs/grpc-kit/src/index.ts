// What every gRPC-serving app shares: the server with health and reflection, authentication, and the
// mapping from domain errors to status codes.
export * from './auth.js';
export * from './errors.js';
export * from './unary.js';
export * from './server.js';
export * from './lifecycle.js';
export * from './readiness.js';
export * from './tls.js';

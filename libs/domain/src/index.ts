// Webhook domain rules as plain functions: no transport, no database.
export * from './errors.js';
export * from './ids.js';
export * from './signing.js';
export * from './secret-box.js';
export * from './retry-policy.js';
export * from './failure-window.js';
export * from './event-types.js';
export * from './event-examples.js';
export * from './headers.js';
export * from './url-policy.js';
export * from './portal-session.js';
export * from './endpoint-auth.js';

// Telemetry for every service: JSON logs carrying trace ids, OpenTelemetry tracing and metrics, and the
// operations HTTP server (/metrics, /healthz, /readyz).
export { createLogger } from './logger.js';
export type { Logger } from './logger.js';
export { startTelemetry, telemetry, type Telemetry } from './otel.js';
export { startOperationsServer, type OperationsServer } from './operations.js';
export { metrics, trace, context, SpanStatusCode, type Context, type Span, type Meter } from '@opentelemetry/api';

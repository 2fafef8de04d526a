// Structured JSON logs for every service. Tracing and metrics join this library with the observability work.
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** A JSON logger that names the service on every line; LOG_LEVEL picks the level (default info). */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

// Starts telemetry before the portal loads anything it instruments, then runs the composition root.
import { createRequire } from 'node:module';
import { startTelemetry } from '@webhooks/telemetry';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };
await startTelemetry('portal', version);
await import('./app.js');

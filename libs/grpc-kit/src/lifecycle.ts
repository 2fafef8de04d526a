import { ConfigError, localDevToken } from '@webhooks/config';
import type { Logger } from '@webhooks/telemetry';

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits: 0 when it finished, 1 when it failed or took longer
 * than `timeoutMs`. A second signal exits at once.
 */
export function onShutdownSignal(logger: Logger, timeoutMs: number, stop: () => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal, exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs }, 'shutdown took too long, exiting');
      process.exit(1);
    }, timeoutMs);
    stop().then(
      () => {
        clearTimeout(timer);
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}

/** Runs a service's start-up; a bad configuration or a failed start is logged as fatal and exits 1. */
export function runService(logger: Logger, start: () => Promise<void>): void {
  start().catch((error: unknown) => {
    if (error instanceof ConfigError) logger.fatal({ problems: error.problems }, error.message);
    else logger.fatal({ err: error }, 'start-up failed');
    process.exit(1);
  });
}

/**
 * The one "ready" line a service logs once it serves (tests and scripts wait for it, with its ports),
 * preceded in the local profile by the development token it accepts.
 */
export function logReady(logger: Logger, settings: { profile: string; apiTokens?: readonly string[] }, fields: Record<string, unknown>): void {
  if (settings.profile === 'local' && settings.apiTokens?.includes(localDevToken)) {
    logger.info({ token: localDevToken }, 'local profile: accepting the development token');
  }
  logger.info(fields, 'ready');
}

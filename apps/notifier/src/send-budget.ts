// The time one disable notice may take, checked once at start-up. While a notice is being sent the
// notifier tells NATS every third of NOTICE_ACK_WAIT that the trip is still being worked on, so a slow
// SMTP server never gets the trip redelivered (and a second email sent) mid-send. The SMTP timeouts bound
// how long a hung server can hold a trip; a configuration that lets one send run too long is refused.
import { ConfigError } from '@webhooks/config';

/** The workspace lookup at the control plane that precedes each send (its gRPC deadline). */
export const directoryTimeoutMs = 10_000;
/**
 * The longest a notice may hold its trip: connecting, the greeting, one silent SMTP exchange and the
 * lookup together. Beyond it a hung SMTP server would keep a trip (and a worker) for too long.
 */
export const maxSendMs = 5 * 60_000;
/** Below this the keep-alive (a third of it) would be a busy stream of messages to NATS. */
export const minAckWaitMs = 1_000;

export interface SendTimeouts {
  readonly ackWaitMs: number;
  readonly connectionTimeoutMs: number;
  readonly greetingTimeoutMs: number;
  readonly socketTimeoutMs: number;
}

export interface SendBudget {
  /** How often a trip being handled is reported as still in progress. */
  readonly keepAliveMs: number;
  /** The sum of the timeouts that can each fire once in one send. */
  readonly worstCaseSendMs: number;
}

/**
 * Checks the notifier's time settings and returns the keep-alive interval. Throws a ConfigError naming
 * the variables when a send could not be kept alive or could take longer than maxSendMs. The socket
 * timeout bounds each silence of the server, not the whole exchange: a server that answers every
 * command just in time can take longer, and the keep-alive covers that too.
 */
export function sendBudget(settings: SendTimeouts): SendBudget {
  const problems: string[] = [];
  if (settings.ackWaitMs < minAckWaitMs) {
    problems.push(`NOTICE_ACK_WAIT (${settings.ackWaitMs} ms) must be at least ${minAckWaitMs} ms: a trip being sent is reported as in progress every third of it`);
  }
  const timeouts = { SMTP_CONNECTION_TIMEOUT: settings.connectionTimeoutMs, SMTP_GREETING_TIMEOUT: settings.greetingTimeoutMs, SMTP_SOCKET_TIMEOUT: settings.socketTimeoutMs };
  for (const [variable, value] of Object.entries(timeouts)) {
    // nodemailer treats 0 as "no timeout": a hung server would hold the trip for ever.
    if (value <= 0) problems.push(`${variable} must be above 0: without it a hung SMTP server holds a trip for ever`);
  }
  const worstCaseSendMs = directoryTimeoutMs + settings.connectionTimeoutMs + settings.greetingTimeoutMs + settings.socketTimeoutMs;
  if (worstCaseSendMs > maxSendMs) {
    problems.push(
      `SMTP_CONNECTION_TIMEOUT (${settings.connectionTimeoutMs} ms) + SMTP_GREETING_TIMEOUT (${settings.greetingTimeoutMs} ms) + SMTP_SOCKET_TIMEOUT (${settings.socketTimeoutMs} ms) + ${directoryTimeoutMs} ms for the workspace lookup = ${worstCaseSendMs} ms, more than the ${maxSendMs} ms one notice may take; lower the SMTP timeouts`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { keepAliveMs: Math.floor(settings.ackWaitMs / 3), worstCaseSendMs };
}

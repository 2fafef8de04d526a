// One email per breaker trip: the trip is acked only once the SMTP server accepted the notice, and NATS
// is told it is still being worked on while the send runs, so a slow server never gets it redelivered
// (and a second email sent). While sending fails it is retried with growing waits; a trip older than the
// configured age is given up and logged as an error. A workspace without notification addresses is
// logged and acked.
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { BreakerTripped, SubscriptionServiceClient, type GetWorkspaceResponse, type Workspace } from '@webhooks/contracts';
import { AckPolicy, DeliverPolicy, ensureConsumer, traceContextOf, type JetStreamClient, type JetStreamManager, type JsMsg, type Topology } from '@webhooks/messaging';
import { metrics, SpanStatusCode, trace, type Logger } from '@webhooks/telemetry';
import { context } from '@opentelemetry/api';

const tracer = trace.getTracer('notifier');
const noticeMetrics = { notices: metrics.getMeter('notifier').createCounter('webhook.notices', { description: 'Disable notices by result (sent, failed, given_up)' }) };
import type { Mailer } from './mailer.js';
import { composeNotice } from './notice.js';
import { directoryTimeoutMs } from './send-budget.js';

export interface NotifierSettings {
  readonly maxNoticeAgeMs: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  /** How often a trip being handled is reported to NATS as in progress: well inside its ack wait (sendBudget). */
  readonly keepAliveMs: number;
}

/**
 * Asks the control plane for a workspace (its name and notification addresses), over the transport the
 * configuration chose (TLS with the subscription service's CA in production; plaintext by default).
 */
export function workspaceDirectory(
  address: string,
  token: string,
  transport: { credentials: ReturnType<typeof credentials.createInsecure>; options?: ConstructorParameters<typeof SubscriptionServiceClient>[2] } = { credentials: credentials.createInsecure() },
) {
  const client = new SubscriptionServiceClient(address, transport.credentials, transport.options);
  return {
    get(workspaceId: string): Promise<Workspace | undefined> {
      const metadata = new Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      return new Promise((resolve, reject) =>
        client.getWorkspace({ workspaceId }, metadata, { deadline: new Date(Date.now() + directoryTimeoutMs) }, (error: ServiceError | null, response: GetWorkspaceResponse) => {
          if (error?.code === status.NOT_FOUND) resolve(undefined);
          else if (error) reject(error);
          else resolve(response.workspace);
        }),
      );
    },
    close: () => client.close(),
  };
}

export class TripNotifier {
  constructor(
    private readonly directory: ReturnType<typeof workspaceDirectory>,
    private readonly mailer: Mailer,
    private readonly settings: NotifierSettings,
    private readonly logger: Logger,
  ) {}

  readonly handle = async (message: JsMsg): Promise<void> => {
    const keepAlive = setInterval(() => message.working(), this.settings.keepAliveMs);
    try {
      await context.with(traceContextOf(message.headers), () => this.process(message));
    } finally {
      clearInterval(keepAlive);
    }
  };

  private async process(message: JsMsg): Promise<void> {
    let trip: BreakerTripped;
    try {
      trip = BreakerTripped.decode(message.data);
    } catch (error) {
      this.logger.error({ err: error, seq: message.seq }, 'undecodable trip terminated');
      message.term();
      return;
    }
    const log = { tripId: trip.tripId, workspaceId: trip.workspaceId };
    const age = Date.now() - (trip.tripTime?.getTime() ?? Date.now());
    if (age > this.settings.maxNoticeAgeMs) {
      noticeMetrics.notices.add(1, { result: 'given_up' });
      this.logger.error({ ...log, ageMs: age }, 'disable notice given up: it could not be sent in time');
      message.term();
      return;
    }
    try {
      const workspace = await this.directory.get(trip.workspaceId);
      if (!workspace) {
        this.logger.error(log, 'disable notice not sent: the workspace does not exist');
        message.ack();
        return;
      }
      if (workspace.notificationEmails.length === 0) {
        this.logger.warn(log, 'disable notice not sent: the workspace has no notification addresses');
        message.ack();
        return;
      }
      await tracer.startActiveSpan('notice.send', { attributes: { 'workspace.id': trip.workspaceId, 'breaker.trip_id': trip.tripId } }, async (span) => {
        try {
          await this.mailer.send(workspace.notificationEmails, composeNotice(trip, workspace.name));
        } catch (error) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
          throw error;
        } finally {
          span.end();
        }
      });
      noticeMetrics.notices.add(1, { result: 'sent' });
      this.logger.info({ ...log, to: workspace.notificationEmails }, 'disable notice sent');
      message.ack();
    } catch (error) {
      const attempt = message.info.deliveryCount;
      const retryInMs = Math.min(this.settings.retryMaxMs, this.settings.retryBaseMs * 2 ** (attempt - 1));
      noticeMetrics.notices.add(1, { result: 'failed' });
      this.logger.warn({ ...log, err: error, attempt, retryInMs }, 'disable notice not sent yet; will retry');
      message.nak(retryInMs);
    }
  }
}

/** Trips handled at the same time: one slow SMTP exchange does not hold every other notice back. */
const workers = 2;
/** How long one pull waits for a trip before the worker pulls again. */
const pullExpiresMs = 5_000;
/** Pause after a worker's pull or handling failed unexpectedly, before it pulls again. */
const restartAfterMs = 1_000;

export interface TripConsumerOptions {
  readonly ackWaitMs: number;
  /** Told when the consumer stops working (a pull keeps failing) and when it works again. */
  readonly onHealth?: (ok: boolean, reason?: string) => void;
}

/**
 * Workers that each pull one trip at a time (next(), not consume(): no trip waits in a client buffer,
 * unwatched, while another is sent) and handle it. A worker whose pull or handling throws logs it, says
 * so through onHealth, and pulls again after a pause: the loop only ends on stop().
 */
export async function consumeTripsForNotices(js: JetStreamClient, jsm: JetStreamManager, topology: Topology, notifier: TripNotifier, logger: Logger, options: TripConsumerOptions): Promise<{ stop(): Promise<void> }> {
  const stream = topology.streams.breaker;
  const durable = topology.consumers.tripsToNotifier;
  const config = { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: topology.subjects.breakerTrippedAll, ack_wait: options.ackWaitMs * 1_000_000, max_deliver: -1 };
  // Also how a worker restarts: a consumer that was removed (or a stream that was recreated) is made again.
  const connect = async () => {
    await ensureConsumer(jsm, stream, { ...config, durable_name: durable });
    return js.consumers.get(stream, durable);
  };
  let consumer = await connect();
  let stopped = false;
  const failing = new Set<number>();
  const pauses = new Set<() => void>();
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        pauses.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      pauses.add(wake);
    });

  const work = async (worker: number) => {
    while (!stopped) {
      try {
        const message = await consumer.next({ expires: pullExpiresMs });
        if (failing.delete(worker)) {
          logger.info({ worker }, 'trip consumer works again');
          if (failing.size === 0) options.onHealth?.(true);
        }
        if (!message) continue;
        // Pulled while stopping: hand it straight back rather than start a send the shutdown would cut.
        if (stopped) message.nak();
        else await notifier.handle(message);
      } catch (error) {
        if (stopped) break;
        if (!failing.has(worker)) logger.error({ err: error, worker }, 'trip consumer failed; it pulls again shortly');
        failing.add(worker);
        options.onHealth?.(false, 'the trip consumer cannot pull trips');
        await pause(restartAfterMs);
        consumer = await connect().catch(() => consumer);
      }
    }
  };
  const running = Array.from({ length: workers }, (_, worker) => work(worker));
  return {
    async stop() {
      stopped = true;
      for (const wake of pauses) wake();
      // A pull in progress ends by its expiry at the latest; a send in progress finishes and is acked.
      await Promise.all(running);
    },
  };
}

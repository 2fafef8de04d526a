// One email per breaker trip: the trip is acked only once the SMTP server accepted the notice. While
// sending fails it is retried with growing waits; a trip older than the configured age is given up
// and logged as an error. A workspace without notification addresses is logged and acked.
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { BreakerTripped, SubscriptionServiceClient, type GetWorkspaceResponse, type Workspace } from '@webhooks/contracts';
import { AckPolicy, DeliverPolicy, ensureConsumer, traceContextOf, type JetStreamClient, type JetStreamManager, type JsMsg, type Topology } from '@webhooks/messaging';
import { metrics, SpanStatusCode, trace, type Logger } from '@webhooks/telemetry';
import { context } from '@opentelemetry/api';

const tracer = trace.getTracer('notifier');
const noticeMetrics = { notices: metrics.getMeter('notifier').createCounter('webhook.notices', { description: 'Disable notices by result (sent, failed, given_up)' }) };
import type { Mailer } from './mailer.js';
import { composeNotice } from './notice.js';

export interface NotifierSettings {
  readonly maxNoticeAgeMs: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
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
        client.getWorkspace({ workspaceId }, metadata, { deadline: new Date(Date.now() + 10_000) }, (error: ServiceError | null, response: GetWorkspaceResponse) => {
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

  readonly handle = (message: JsMsg): Promise<void> => context.with(traceContextOf(message.headers), () => this.process(message));

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

export async function consumeTripsForNotices(js: JetStreamClient, jsm: JetStreamManager, topology: Topology, notifier: TripNotifier, logger: Logger): Promise<{ stop(): Promise<void> }> {
  const stream = topology.streams.breaker;
  const durable = topology.consumers.tripsToNotifier;
  const config = { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: topology.subjects.breakerTrippedAll, ack_wait: 60_000_000_000, max_deliver: -1 };
  await ensureConsumer(jsm, stream, { ...config, durable_name: durable });
  const messages = await (await js.consumers.get(stream, durable)).consume({ max_messages: 4 });
  const done = (async () => {
    for await (const message of messages) await notifier.handle(message);
  })().catch((error: unknown) => logger.error({ err: error }, 'trip consumer ended with an error'));
  return {
    async stop() {
      messages.stop();
      await done;
    },
  };
}

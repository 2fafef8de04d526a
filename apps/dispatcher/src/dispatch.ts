// Applies one attempt's decision to its JetStream message: the attempt record is stored first, then the
// task is acked (delivered), nak'ed with the retry delay, or terminated (dropped). term() carries no
// reason: NATS servers before 2.10 do not understand "+TERM <reason>" and would leave the task pending,
// blocking the webhook until ack_wait; the reason is in the attempt record.
import { context } from '@opentelemetry/api';
import { AttemptDecision, AttemptRecord, DeliveryTask, encodeMessage, type Route } from '@webhooks/contracts';
import { deliveryIdOf, type RetryPolicy } from '@webhooks/domain';
import { traceContextOf, traceHeaders, type JetStreamPublisher, type JetStreamManager, type JsMsg, type RoutingTable, type Topology } from '@webhooks/messaging';
import { SpanStatusCode, trace, type Logger, type Span } from '@webhooks/telemetry';
import { dispatcherMetrics } from './metrics.js';

const tracer = trace.getTracer('dispatcher');
import type { Breaker, Suspensions } from './breaker.js';
import type { AttemptResult, Decision, Deliverer } from './delivery.js';

export class Dispatch {
  /** When each task's first attempt started, by "<webhook id>:<stream sequence>". */
  private readonly firstAttempts = new Map<string, number>();

  constructor(
    private readonly publisher: JetStreamPublisher,
    private readonly jsm: JetStreamManager,
    private readonly topology: Topology,
    private readonly routes: RoutingTable,
    private readonly deliverer: Deliverer,
    private readonly retryPolicy: RetryPolicy,
    private readonly breaker: Breaker,
    private readonly suspensions: Suspensions,
    private readonly logger: Logger,
  ) {}

  /** Runs each attempt inside the trace context the task carries from ingest. */
  readonly handle = (message: JsMsg): Promise<boolean> => context.with(traceContextOf(message.headers), () => this.process(message));

  private async process(message: JsMsg): Promise<boolean> {
    let task: DeliveryTask;
    try {
      task = DeliveryTask.decode(message.data);
    } catch (error) {
      this.logger.error({ err: error, seq: message.seq }, 'undecodable delivery task terminated');
      message.term();
      return true;
    }
    const route = this.routes.route(task.workspaceId, task.webhookId);
    if (!route?.active || this.suspensions.isSuspended(route)) {
      // Disabled or deleted: the task is not sent. It is recorded as dropped and removed.
      const reason = route ? 'webhook disabled' : 'webhook deleted';
      try {
        await this.record(task, 0, undefined, undefined, { kind: 'dropped', reason });
      } catch (error) {
        this.logger.error({ err: error, eventId: task.eventId, webhookId: task.webhookId }, 'drop record not stored; the task stays queued');
        message.nak(1_000);
        return false;
      }
      this.logger.warn({ eventId: task.eventId, webhookId: task.webhookId, workspaceId: task.workspaceId, reason }, 'event dropped');
      dispatcherMetrics.deliveries.add(1, { result: 'dropped' });
      message.term();
      return true;
    }
    const attempt = message.info.deliveryCount;
    // One span per attempt, a child of the ingest span the task carries; the HTTP call is its child.
    return tracer.startActiveSpan(
      'webhook.attempt',
      { attributes: { 'webhook.id': task.webhookId, 'workspace.id': task.workspaceId, 'event.id': task.eventId, 'event.type': task.eventType, 'webhook.attempt': attempt } },
      async (span) => {
        try {
          return await this.attempt(message, task, route, attempt, span);
        } finally {
          span.end();
        }
      },
    );
  }

  private async attempt(message: JsMsg, task: DeliveryTask, route: Route, attempt: number, span: Span): Promise<boolean> {
    const key = `${task.webhookId}:${message.seq}`;
    const firstAttemptAt = await this.firstAttemptTime(key, attempt, task);
    const outcome = await this.deliverer.attempt(task, route, attempt, firstAttemptAt);
    const decision = outcome.decision;
    span.setAttributes({ 'webhook.outcome': outcome.result.kind, 'webhook.decision': decision.kind, 'http.response.status_code': outcome.result.statusCode });
    if (outcome.result.kind === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.result.reason });
    dispatcherMetrics.attempts.add(1, { outcome: outcome.result.kind });
    dispatcherMetrics.attemptDuration.record(outcome.result.durationMs / 1000, { outcome: outcome.result.kind });
    try {
      await this.record(task, attempt, firstAttemptAt, outcome, decision);
    } catch (error) {
      // Without a durable record the attempt is not finished: it is made again shortly.
      this.logger.error({ err: error, eventId: task.eventId, webhookId: task.webhookId }, 'attempt record not stored; the attempt will be repeated');
      message.nak(1_000);
      return true;
    }
    if (outcome.result.kind === 'failed') {
      // Counted towards the workspace's breaker; a failure to count must not hold up delivery.
      await this.breaker
        .recordFailure(task.workspaceId, task.webhookId, outcome.startedAt.getTime(), outcome.result.reason)
        .catch((error: unknown) => this.logger.error({ err: error, workspaceId: task.workspaceId }, 'breaker update failed'));
    }
    if (decision.kind === 'succeeded') {
      this.firstAttempts.delete(key);
      dispatcherMetrics.deliveries.add(1, { result: 'succeeded' });
      if (task.acceptedAt) dispatcherMetrics.deliveryLatency.record((Date.now() - task.acceptedAt.getTime()) / 1000);
      message.ack();
    } else if (decision.kind === 'retry') {
      const reason = outcome.result.kind === 'failed' ? outcome.result.reason : '';
      this.logger.info({ eventId: task.eventId, webhookId: task.webhookId, workspaceId: task.workspaceId, attempt, reason, retryInMs: decision.delayMs }, 'attempt failed, will retry');
      message.nak(decision.delayMs);
    } else {
      this.firstAttempts.delete(key);
      dispatcherMetrics.deliveries.add(1, { result: 'dropped' });
      this.logger.warn({ eventId: task.eventId, webhookId: task.webhookId, workspaceId: task.workspaceId, attempt, reason: decision.reason }, 'event dropped');
      message.term();
    }
    return true;
  }

  /**
   * The first attempt's start time. Remembered in memory; after a restart (or on another replica) it is
   * read from the webhook's last attempt record, which belongs to this task because a webhook has one
   * task in flight. Without one, the earliest time consistent with the schedule is assumed, which can
   * only make the event give up sooner, never later.
   */
  private async firstAttemptTime(key: string, attempt: number, task: DeliveryTask): Promise<number> {
    const now = Date.now();
    if (attempt === 1) {
      this.firstAttempts.set(key, now);
      return now;
    }
    let known = this.firstAttempts.get(key);
    if (known === undefined) {
      const last = await this.jsm.streams
        .getMessage(this.topology.streams.attempts, { last_by_subj: this.topology.subjects.attempt(task.workspaceId, task.webhookId) })
        .catch(() => null);
      const record = last ? AttemptRecord.decode(last.data) : undefined;
      known =
        record && record.eventId === task.eventId && record.firstAttemptTime
          ? record.firstAttemptTime.getTime()
          : now - this.retryPolicy.delaysMs.slice(0, attempt - 1).reduce((sum, d) => sum + d, 0);
      this.firstAttempts.set(key, known);
    }
    return known;
  }

  /**
   * Stores one attempt record (attempt 0: dropped without an attempt). The first record of a delivery
   * carries its body, so the log can replay it. Deduplicated per delivery and attempt.
   */
  private async record(task: DeliveryTask, attempt: number, firstAttemptAt: number | undefined, outcome: AttemptResult | undefined, decision: Decision): Promise<void> {
    const result = outcome?.result;
    const deliveryId = task.deliveryId || deliveryIdOf(task.eventId, task.webhookId);
    const msgID = attempt === 0 ? `${deliveryId}.dropped` : `${deliveryId}.${attempt}`;
    const record: AttemptRecord = {
      eventId: task.eventId,
      workspaceId: task.workspaceId,
      webhookId: task.webhookId,
      eventType: task.eventType,
      attemptNumber: attempt,
      startTime: outcome?.startedAt ?? new Date(),
      durationMs: result?.durationMs ?? 0,
      statusCode: result?.statusCode ?? 0,
      failureReason: result?.kind === 'failed' ? result.reason : '',
      responseExcerpt: result?.excerpt ?? '',
      decision:
        decision.kind === 'succeeded'
          ? AttemptDecision.ATTEMPT_DECISION_SUCCEEDED
          : decision.kind === 'retry'
            ? AttemptDecision.ATTEMPT_DECISION_RETRY
            : AttemptDecision.ATTEMPT_DECISION_DROPPED,
      retryTime: decision.kind === 'retry' ? new Date(decision.retryAt) : undefined,
      dropReason: decision.kind === 'dropped' ? decision.reason : '',
      requestHeaders: outcome?.loggedHeaders ?? {},
      firstAttemptTime: firstAttemptAt === undefined ? undefined : new Date(firstAttemptAt),
      deliveryId,
      retryOfDeliveryId: task.retryOfDeliveryId,
      body: attempt <= 1 ? task.body : Buffer.alloc(0),
      acceptedAt: task.acceptedAt,
    };
    const headers = traceHeaders();
    await this.publisher.publish(this.topology.subjects.attempt(task.workspaceId, task.webhookId), encodeMessage(AttemptRecord, record), { msgID, ...(headers ? { headers } : {}) });
  }
}

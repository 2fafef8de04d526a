// Applies one attempt's decision to its JetStream message: the attempt record is stored first, then the
// task is acked (delivered), terminated (dropped), or, to retry, parked (from a lane) or nak'ed with the
// retry delay (from its park). term() carries no reason: NATS servers before 2.10 do not understand
// "+TERM <reason>" and would leave the task pending, blocking the webhook until ack_wait; the reason is in
// the attempt record.
//
// A decided attempt keeps its decision. Its record is stored in place, retried with a backoff while the
// task is kept alive with working(): the HTTP request is never made again because the log was slow. The
// attempt number and the first attempt's time come from the decisions (this replica's memory, else the
// webhook's last attempt record), never from JetStream's delivery count. If the process dies while it
// retries a record, the task is redelivered after ack_wait and, finding no record of that attempt, makes
// it again: the endpoint may see that one event twice (the documented at-least-once repeat).
//
// A success's record is stored with others of its shard (record-batches.ts), and its ack goes out with
// the next batch (deferred-acks.ts); retries and drops have one
// message each on the webhook's subject, where the next attempt reads them back, and so has a parked
// task's success: a parked task is read again by whoever reads the park next, however long after, and
// finds its end there (a recall covers only what a predecessor may have had out of the shard consumer). A task that ended here
// is remembered by its delivery for the recall window, and a replica taking a shard over recalls the
// successes stored in it recently: so a task whose success was stored but not acked is settled, not sent
// again, by this replica or the next owner.
//
// A webhook with a rate limit is paced before each attempt (rate-pacing.ts): the wait comes before the
// attempt number and the first attempt's time are taken, so waiting is not an attempt and does not start
// the 3-minute clock.
import { context } from '@opentelemetry/api';
import { AttemptDecision, AttemptRecord, DeliveryTask, encodeMessage, type Route } from '@webhooks/contracts';
import { deliveryIdOf, type RetryPolicy } from '@webhooks/domain';
import {
  deliverShardOf,
  parkedFromHeader,
  traceContextOf,
  traceEntries,
  traceHeaders,
  type JetStreamClient,
  type JetStreamPublisher,
  type JetStreamManager,
  type MsgHdrs,
  type RoutingTable,
  type Topology,
} from '@webhooks/messaging';
import { SpanStatusCode, trace, type Logger, type Span } from '@webhooks/telemetry';
import { dispatcherMetrics } from './metrics.js';

import type { Suspensions } from './breaker.js';
import type { BreakerQueue } from './breaker-queue.js';
import type { AttemptResult, Decision, Deliverer } from './delivery.js';
import { AttemptMemory, attemptMemoryMarginMs, EndedDeliveries, type DecidedAttempt } from './attempt-memory.js';
import { limiter } from './concurrency.js';
import { retryInPlace } from './retry-in-place.js';
import { RatePacer, waitKeepingAlive } from './rate-pacing.js';
import { recallSuccesses, type RecordBatches } from './record-batches.js';

const tracer = trace.getTracer('dispatcher');

/**
 * Where a task came from (lanes.ts, park.ts): a webhook's lane, taken from its shard's consumer with later
 * tasks of the webhook possibly held behind it, or its park, whose consumer hands out one at a time.
 */
export type TaskPath = 'lane' | 'parked';

/**
 * What became of a task: settled (acked or terminated); handed back to its park's consumer (nak, e.g.
 * with a retry's delay); to be parked (lane only: nothing was done with the message, and the lane moves
 * it with the webhook's later tasks to the park, in order, instead of a nak that would let them overtake
 * it); abandoned while stopping (left to be redelivered).
 */
export type Handled = 'settled' | 'handed-back' | 'park' | 'abandoned';

/**
 * What the dispatch needs of a task's message: a JetStream message from the shard's consumer, or a
 * parked task read from its stream (park.ts), whose ack and term delete it and whose nak sets the
 * pause before it is read again.
 */
export interface TaskMessage {
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
  readonly seq: number;
  readonly info: { readonly deliveryCount: number };
  ack(): void;
  nak(delayMs?: number): void;
  term(): void;
  working(): void;
}

/** What the task's last decided attempt says, as far as this replica can tell. */
type KnownTask = { readonly kind: 'new' } | ({ readonly kind: 'decided' } & DecidedAttempt);

/**
 * Reads of a webhook's last attempt record in flight at once. A takeover hands every task its
 * predecessor had out to the lanes at once, each maybe attempted and so looked up: at 10,000 webhooks
 * that was thousands of requests at once to one stream leader. Lanes wait their turn instead.
 */
const maxLookups = 32;

/** Pause before asking again when the last attempt record cannot be read. */
const lookupRetryMs = 1_000;
const recordRetryInitialMs = 100;
/** While a task waits for its rate limit, the server is told it is being worked on this often. */
const pacingKeepAliveMs = 500;

export class Dispatch {
  private readonly memory: AttemptMemory;
  /** Deliveries that ended (succeeded or dropped) here or in a recalled batch, by delivery id, for the recall window. */
  private readonly ended: EndedDeliveries;
  private readonly pacer = new RatePacer();
  private readonly lookup = limiter(maxLookups);
  private stopping = false;

  constructor(
    private readonly publisher: JetStreamPublisher,
    private readonly jsm: JetStreamManager,
    private readonly topology: Topology,
    private readonly routes: RoutingTable,
    private readonly deliverer: Deliverer,
    private readonly retryPolicy: RetryPolicy,
    private readonly breaker: BreakerQueue,
    private readonly suspensions: Suspensions,
    private readonly logger: Logger,
    /** One try to store a record; pauses between tries are never longer (see time-budget.ts). */
    private readonly recordPublishTimeoutMs: number,
    private readonly batches: RecordBatches,
    private readonly js: JetStreamClient,
    /** How long ended deliveries (and recalled successes) are remembered (record-batches.ts rule 4). */
    private readonly recallWindowMs: number,
    /**
     * Asked right before each request (fence.ts): waits while the shard's lease renewal runs late, false
     * once the shard is no longer this replica's. The lanes ask before a task too, but the record lookup
     * and the rate limit's wait come in between.
     */
    private readonly mayAct: (shard: number) => Promise<boolean> = async () => true,
    /** A task taken from its shard consumer less than this long ago needs no working() before its request (time-budget.ts). */
    private readonly freshForMs = 0,
  ) {
    this.memory = new AttemptMemory(retryPolicy.giveUpAfterMs + attemptMemoryMarginMs);
    this.ended = new EndedDeliveries(recallWindowMs);
  }

  /**
   * Before a new owner touches a shard's tasks: remembers the successes stored in the shard's batches
   * since `sinceMs`, the server's store time of the oldest task its predecessor may have had out
   * (shard-consumer.ts rule 2): a success of that task was stored after it. Returns how many.
   */
  readonly recall = (shard: number, sinceMs: number): Promise<number> =>
    recallSuccesses(this.js, this.topology, shard, sinceMs, (success) => this.ended.recall(success.deliveryId, success.attempt));

  /** Runs each attempt inside the trace context the task carries from ingest. */
  /**
   * `maybeAttempted`: the lane knows this task may have been attempted before although JetStream hands it
   * out for the first time (its shard's consumer was recreated after tasks were out with another owner).
   */
  readonly handle = (message: TaskMessage, path: TaskPath, maybeAttempted = false, takenAt?: number): Promise<Handled> =>
    context.with(traceContextOf(message.headers), () => this.process(message, path, maybeAttempted, takenAt));

  /**
   * Shutting down: a record still being retried is given up, and its task left to be redelivered after
   * ack_wait (the attempt is then made again).
   */
  stop(): void {
    this.stopping = true;
  }

  /** A lane never naks: a task that must wait is parked instead. */
  private handBack(message: TaskMessage, path: TaskPath, delayMs: number): Handled {
    if (path === 'lane') return 'park';
    message.nak(delayMs);
    return 'handed-back';
  }

  private async process(message: TaskMessage, path: TaskPath, maybeAttempted: boolean, takenAt: number | undefined): Promise<Handled> {
    let task: DeliveryTask;
    try {
      task = DeliveryTask.decode(message.data);
    } catch (error) {
      this.logger.error({ err: error, seq: message.seq }, 'undecodable delivery task terminated');
      message.term();
      return 'settled';
    }
    const route = this.routes.route(task.workspaceId, task.webhookId);
    if (!route?.active || this.suspensions.isSuspended(route)) {
      // Disabled or deleted: the task is not sent. It is recorded as dropped and removed, unless its
      // delivery already ended (its ack was overtaken by the drain's consumer reset): then it is settled
      // as it ended, and the log keeps one final record.
      if (await this.settledEarlier(message, task)) return 'settled';
      const reason = route ? 'webhook disabled' : 'webhook deleted';
      try {
        await this.record(task, 0, undefined, undefined, { kind: 'dropped', reason }, () => message.working());
      } catch (error) {
        this.logger.error({ err: error, eventId: task.eventId, webhookId: task.webhookId }, 'drop record not stored; the task stays queued');
        return this.handBack(message, path, 1_000);
      }
      this.memory.forget(this.keyOf(task, message));
      this.logger.warn({ eventId: task.eventId, webhookId: task.webhookId, workspaceId: task.workspaceId, reason }, 'event dropped');
      dispatcherMetrics.deliveries.add(1, { result: 'dropped' });
      message.term();
      return 'settled';
    }
    const key = this.keyOf(task, message);
    let known: KnownTask;
    try {
      known = await this.knownTask(key, message, task, maybeAttempted);
    } catch (error) {
      // Without the last record the next attempt's number is unknown; guessing could repeat or skip one.
      this.logger.error({ err: error, eventId: task.eventId, webhookId: task.webhookId }, 'last attempt record unreadable; the task waits');
      return this.handBack(message, path, lookupRetryMs);
    }
    if (known.kind === 'decided') {
      const earlier = this.applyEarlierDecision(message, path, task, key, known);
      if (earlier) return earlier;
    }
    const paceMs = this.pacer.delay(task.webhookId, route.rateLimit ?? 0, Date.now());
    if (paceMs > 0) await waitKeepingAlive(paceMs, () => message.working(), pacingKeepAliveMs);
    // The lease is checked again right before the request: the lookup and the pacing took time.
    if (!(await this.mayAct(deliverShardOf(task.webhookId)))) return 'abandoned';
    const attempt = known.kind === 'decided' ? known.attempt + 1 : 1;
    const firstAttemptAt = known.kind === 'decided' ? known.firstAttemptAt : Date.now();
    // One span per attempt, a child of the ingest span the task carries; the HTTP call is its child.
    return tracer.startActiveSpan(
      'webhook.attempt',
      { attributes: { 'webhook.id': task.webhookId, 'workspace.id': task.workspaceId, 'event.id': task.eventId, 'event.type': task.eventType, 'webhook.attempt': attempt } },
      async (span) => {
        try {
          return await this.attempt(message, path, task, route, key, attempt, firstAttemptAt, span, takenAt);
        } finally {
          span.end();
        }
      },
    );
  }

  /**
   * Whether the webhook's last attempt record is this task's and final (succeeded or dropped); if so the
   * task is acked or terminated accordingly. Read from the stream whatever the delivery count says: a
   * drain's new consumer hands out a task as if for the first time. An unreadable record counts as none.
   */
  private async settledEarlier(message: TaskMessage, task: DeliveryTask): Promise<boolean> {
    const ended = this.ended.get(deliveryOf(task));
    if (ended) return this.applyEarlierDecision(message, 'parked', task, this.keyOf(task, message), ended) === 'settled';
    const last = await this.lastRecord(task).catch(() => null);
    const record = last ? AttemptRecord.decode(last.data) : undefined;
    const deliveryId = deliveryOf(task);
    if (!record || record.deliveryId !== deliveryId) return false;
    const decision = decisionOf(record);
    if (decision.kind === 'retry') return false;
    const decided: DecidedAttempt = { attempt: record.attemptNumber, firstAttemptAt: (record.firstAttemptTime ?? record.startTime ?? new Date()).getTime(), decision };
    // Only a final decision settles the task here; a retry is taken up by the attempt path.
    return this.applyEarlierDecision(message, 'parked', task, this.keyOf(task, message), decided) === 'settled';
  }

  private keyOf(task: DeliveryTask, message: TaskMessage): string {
    return `${task.webhookId}:${message.seq}`;
  }

  /**
   * A task whose last decision is already final (its ack or term was lost), or whose retry is not due
   * yet (redelivered after a crash rather than by its nak delay), is settled by that decision without a
   * new attempt. Returns undefined when a new attempt is due.
   */
  private applyEarlierDecision(message: TaskMessage, path: TaskPath, task: DeliveryTask, key: string, known: DecidedAttempt): Handled | undefined {
    const decision = known.decision;
    if (decision.kind === 'retry') {
      const wait = decision.retryAt - Date.now();
      // Never before its planned time: the park waits exactly what is left (a retry read 30 ms early
      // was once attempted then, and the endpoint saw the retry before the schedule said).
      if (wait <= 0) return undefined;
      return this.handBack(message, path, wait);
    }
    this.memory.forget(key);
    this.logger.info({ eventId: task.eventId, webhookId: task.webhookId, attempt: known.attempt, decision: decision.kind }, 'task already decided; settled without a new attempt');
    if (decision.kind === 'succeeded') message.ack();
    else message.term();
    return 'settled';
  }

  private async attempt(message: TaskMessage, path: TaskPath, task: DeliveryTask, route: Route, key: string, attempt: number, firstAttemptAt: number, span: Span, takenAt: number | undefined): Promise<Handled> {
    // The ack wait starts again here, so the time the task waited (in its lane, for its record lookup or
    // its rate limit) does not eat into the attempt's budget; unless it was handed out so recently that
    // the ack wait from its delivery still covers the attempt (time-budget.ts freshForMs).
    if (takenAt === undefined || Date.now() - takenAt >= this.freshForMs) message.working();
    const outcome = await this.deliverer.attempt(task, route, attempt, firstAttemptAt);
    this.pacer.ended(task.webhookId, route.rateLimit ?? 0, Date.now());
    // Debug only (off in production): which replica sent what, to explain a repeat from the logs.
    if (this.logger.isLevelEnabled('debug')) {
      this.logger.debug({ eventId: task.eventId, webhookId: task.webhookId, attempt, seq: message.seq, path, maybeAttempted: message.info.deliveryCount > 1, outcome: outcome.result.kind }, 'attempt made');
    }
    const decision = outcome.decision;
    this.memory.remember(key, { attempt, firstAttemptAt, decision });
    span.setAttributes({ 'webhook.outcome': outcome.result.kind, 'webhook.decision': decision.kind, 'http.response.status_code': outcome.result.statusCode });
    if (outcome.result.kind === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.result.reason });
    dispatcherMetrics.attempts.add(1, { outcome: outcome.result.kind });
    dispatcherMetrics.attemptDuration.record(outcome.result.durationMs / 1000, { outcome: outcome.result.kind });
    if (outcome.result.kind === 'failed') {
      // Counted towards the workspace's breaker in the background: never on the ack path.
      this.breaker.add({ workspaceId: task.workspaceId, webhookId: task.webhookId, at: outcome.startedAt.getTime(), reason: outcome.result.reason });
    }
    try {
      const { failedTries } = await retryInPlace(() => this.record(task, attempt, firstAttemptAt, outcome, decision, () => message.working(), path), {
        keepAlive: () => message.working(),
        initialDelayMs: recordRetryInitialMs,
        maxDelayMs: this.recordPublishTimeoutMs,
        givenUp: () => this.stopping,
        onFirstFailure: (error) =>
          this.logger.warn({ err: error, eventId: task.eventId, webhookId: task.webhookId, attempt, decision: decision.kind }, 'attempt record not stored yet; retrying it in place'),
      });
      if (failedTries > 0) {
        dispatcherMetrics.recordRetries.add(failedTries);
        this.logger.info({ eventId: task.eventId, webhookId: task.webhookId, attempt, failedTries }, 'attempt record stored after retries');
      }
    } catch (error) {
      // Shutting down with the record unstored: the task is redelivered after ack_wait to a replica that
      // finds no record of this attempt and makes it again.
      this.logger.error({ err: error, eventId: task.eventId, webhookId: task.webhookId, attempt }, 'attempt record not stored before shutdown; the attempt will be repeated');
      return 'abandoned';
    }
    if (decision.kind === 'succeeded') {
      this.memory.forget(key);
      this.ended.add(deliveryOf(task), attempt, 'succeeded');
      dispatcherMetrics.deliveries.add(1, { result: 'succeeded' });
      if (task.acceptedAt) dispatcherMetrics.deliveryLatency.record((Date.now() - task.acceptedAt.getTime()) / 1000);
      // A batched success's ack goes with the next record batch (deferred-acks.ts); a parked task's ack deletes it from its park.
      if (batched(decision, path)) this.batches.acks.add(message);
      else message.ack();
    } else if (decision.kind === 'retry') {
      const reason = outcome.result.kind === 'failed' ? outcome.result.reason : '';
      // The retry keeps its planned time, however long the record took to store.
      const delayMs = Math.max(0, decision.retryAt - Date.now());
      this.logger.info({ eventId: task.eventId, webhookId: task.webhookId, workspaceId: task.workspaceId, attempt, reason, retryInMs: delayMs }, 'attempt failed, will retry');
      return this.handBack(message, path, delayMs);
    } else {
      this.memory.forget(key);
      this.ended.add(deliveryOf(task), attempt, 'dropped');
      dispatcherMetrics.deliveries.add(1, { result: 'dropped' });
      this.logger.warn({ eventId: task.eventId, webhookId: task.webhookId, workspaceId: task.workspaceId, attempt, reason: decision.reason }, 'event dropped');
      message.term();
    }
    return 'settled';
  }

  /**
   * The task's last decided attempt: remembered here; for a task delivered for the first time there is
   * none; otherwise (redelivered, handed out again by a recreated consumer, or parked after attempts in
   * its lane) its delivery's end if one is known here (ended here, or a success recalled from the shard's
   * record batches), else read from the webhook's last single attempt record (a retry or a drop), which
   * belongs to this task when its delivery id matches (a webhook has one task in flight). A redelivered
   * task without either made no decided attempt (the process died before storing it). Throws when the
   * record cannot be read.
   */
  private async knownTask(key: string, message: TaskMessage, task: DeliveryTask, maybeAttempted: boolean): Promise<KnownTask> {
    const remembered = this.memory.get(key);
    if (remembered) return { kind: 'decided', ...remembered };
    if (!maybeAttempted && message.info.deliveryCount === 1 && !message.headers?.has(parkedFromHeader)) return { kind: 'new' };
    const deliveryId = deliveryOf(task);
    const ended = this.ended.get(deliveryId);
    if (ended) return { kind: 'decided', ...ended };
    const last = await this.lastRecord(task);
    const record = last ? AttemptRecord.decode(last.data) : undefined;
    if (!record || record.deliveryId !== deliveryId || record.attemptNumber < 1) return { kind: 'new' };
    const decided: DecidedAttempt = { attempt: record.attemptNumber, firstAttemptAt: (record.firstAttemptTime ?? record.startTime ?? new Date()).getTime(), decision: decisionOf(record) };
    this.memory.remember(key, decided);
    return { kind: 'decided', ...decided };
  }

  /** The webhook's last single attempt record (a retry, a drop, a parked task's success), at most maxLookups at once. */
  private lastRecord(task: DeliveryTask) {
    return this.lookup(() => this.jsm.streams.getMessage(this.topology.streams.attempts, { last_by_subj: this.topology.subjects.attempt(task.workspaceId, task.webhookId) }));
  }

  /**
   * Stores one attempt record (attempt 0: dropped without an attempt). The first record of a delivery
   * carries its body, so the log can replay it. A lane task's success goes into its shard's batch
   * (`keepAlive` is its task's working(), for a wait behind a slow store); any other record, a parked
   * task's success too, is its own message, deduplicated per delivery and attempt.
   */
  private async record(task: DeliveryTask, attempt: number, firstAttemptAt: number | undefined, outcome: AttemptResult | undefined, decision: Decision, keepAlive: () => void, path: TaskPath = 'lane'): Promise<void> {
    const result = outcome?.result;
    const deliveryId = deliveryOf(task);
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
      traceContext: {},
    };
    if (batched(decision, path)) {
      record.traceContext = traceEntries();
      return this.batches.add(deliverShardOf(task.webhookId), record, keepAlive);
    }
    const headers = traceHeaders();
    await this.publisher.publish(this.topology.subjects.attempt(task.workspaceId, task.webhookId), encodeMessage(AttemptRecord, record), { msgID, ...(headers ? { headers } : {}) });
  }
}

/** A lane task's success: its record goes into its shard's batch (record-batches.ts), and its ack with the next batch (deferred-acks.ts). */
function batched(decision: Decision, path: TaskPath): boolean {
  return decision.kind === 'succeeded' && path === 'lane';
}

function decisionOf(record: AttemptRecord): Decision {
  switch (record.decision) {
    case AttemptDecision.ATTEMPT_DECISION_SUCCEEDED:
      return { kind: 'succeeded' };
    case AttemptDecision.ATTEMPT_DECISION_RETRY: {
      const retryAt = record.retryTime?.getTime() ?? 0;
      return { kind: 'retry', retryAt, delayMs: 0 };
    }
    default:
      return { kind: 'dropped', reason: record.dropReason };
  }
}

/** The task's delivery id; tasks queued before delivery ids existed derive it from event and webhook. */
function deliveryOf(task: DeliveryTask): string {
  return task.deliveryId || deliveryIdOf(task.eventId, task.webhookId);
}

// The attempt-log writer and retention against a real PostgreSQL: one statement per batch, idempotent,
// order-insensitive status, and old deliveries removed in small batches.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AttemptDecision, type AttemptRecord } from '@webhooks/contracts';
import { createTestDatabase, type TestDatabase } from '@webhooks/testing';
import { writeAttempts } from '../src/delivery-log/attempt-log.js';
import { DeliveryLog } from '../src/delivery-log/delivery-log.js';
import { deleteOldDeliveries } from '../src/delivery-log/retention.js';
import { migrate, openOrm, type Orm } from '../src/persistence/orm.js';

function record(deliveryId: string, attempt: number, decision: AttemptDecision, overrides: Partial<AttemptRecord> = {}): AttemptRecord {
  return {
    eventId: `evt_${deliveryId}`, workspaceId: 'acme', webhookId: 'wh_1', eventType: 'contact.created', attemptNumber: attempt,
    startTime: new Date(Date.now() + attempt * 1000), durationMs: 12, statusCode: decision === AttemptDecision.ATTEMPT_DECISION_SUCCEEDED ? 200 : 500,
    failureReason: decision === AttemptDecision.ATTEMPT_DECISION_SUCCEEDED ? '' : 'status 500', responseExcerpt: 'x\u0000y', decision,
    retryTime: undefined, dropReason: decision === AttemptDecision.ATTEMPT_DECISION_DROPPED ? 'attempts exhausted after 4 attempts' : '',
    requestHeaders: { 'webhook-id': 'evt' }, firstAttemptTime: new Date(), deliveryId, retryOfDeliveryId: '',
    body: attempt <= 1 ? Buffer.from('{"id":"evt"}') : Buffer.alloc(0), acceptedAt: new Date(), traceContext: {}, ...overrides,
  };
}

describe('attempt log', () => {
  let database: TestDatabase;
  let orm: Orm;

  before(async () => {
    database = await createTestDatabase();
    orm = await openOrm(database.url, () => {});
    await migrate(orm);
  });

  after(async () => {
    await orm?.close();
    await database?.drop();
  });

  const deliveryRow = async (id: string) =>
    (await orm.em.getConnection().execute<{ status: string; attempt_count: number; drop_reason: string | null; body: Buffer | null }[]>('select status, attempt_count, drop_reason, body from deliveries where id = ?', [id]))[0];
  const attemptCount = async (id: string) => Number((await orm.em.getConnection().execute<{ n: string }[]>('select count(*) as n from attempts where delivery_id = ?', [id]))[0]!.n);

  it('writes a batch once, however often it arrives', async () => {
    const batch = [record('dl_a', 1, AttemptDecision.ATTEMPT_DECISION_RETRY), record('dl_a', 2, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED), record('dl_b', 1, AttemptDecision.ATTEMPT_DECISION_RETRY)];
    assert.deepEqual(await writeAttempts(orm, batch), { deliveries: 2, attempts: 3 });
    assert.deepEqual(await writeAttempts(orm, batch), { deliveries: 2, attempts: 0 });
    assert.equal(await attemptCount('dl_a'), 2);
    const a = await deliveryRow('dl_a');
    assert.equal(a!.status, 'succeeded');
    assert.equal(a!.attempt_count, 2);
    assert.equal(a!.body!.toString(), '{"id":"evt"}');
    assert.equal((await deliveryRow('dl_b'))!.status, 'retrying');
  });

  it('stores response text and headers exactly as received, quotes, placeholders and all', async () => {
    const excerpt = `it's "quoted" \\ back\\slashed $1 ? :name \u{1F600} ünïcode\u0000after-nul`;
    await writeAttempts(orm, [record('dl_text', 1, AttemptDecision.ATTEMPT_DECISION_RETRY, { responseExcerpt: excerpt, requestHeaders: { 'x-q': "a'b\"c", 'x-d': '$1' } })]);
    const [stored] = await orm.em.getConnection().execute<{ response_excerpt: string; request_headers: Record<string, string> }[]>('select response_excerpt, request_headers from attempts where delivery_id = ?', ['dl_text']);
    // NUL cannot be stored in PostgreSQL text and is the one character left out.
    assert.equal(stored!.response_excerpt, excerpt.replace('\u0000', ''));
    assert.deepEqual(stored!.request_headers, { 'x-q': "a'b\"c", 'x-d': '$1' });
  });

  it('keeps final states final whatever order the records come in', async () => {
    // The success arrives before an older retry record: still succeeded.
    await writeAttempts(orm, [record('dl_c', 2, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED)]);
    await writeAttempts(orm, [record('dl_c', 1, AttemptDecision.ATTEMPT_DECISION_RETRY)]);
    assert.deepEqual({ ...(await deliveryRow('dl_c')), body: undefined }, { status: 'succeeded', attempt_count: 2, drop_reason: null, body: undefined });
    // A drop is final; a drop without attempt (number 0) keeps the attempt count.
    await writeAttempts(orm, [record('dl_d', 1, AttemptDecision.ATTEMPT_DECISION_RETRY), record('dl_d', 2, AttemptDecision.ATTEMPT_DECISION_RETRY)]);
    await writeAttempts(orm, [record('dl_d', 0, AttemptDecision.ATTEMPT_DECISION_DROPPED, { dropReason: 'webhook disabled' })]);
    await writeAttempts(orm, [record('dl_d', 2, AttemptDecision.ATTEMPT_DECISION_RETRY)]);
    const d = await deliveryRow('dl_d');
    assert.equal(d!.status, 'dropped');
    assert.equal(d!.drop_reason, 'webhook disabled');
    assert.equal(d!.attempt_count, 2);
  });

  it('deletes deliveries older than the retention age in small batches, with their attempts', async () => {
    const old = new Date(Date.now() - 40 * 86_400_000);
    await writeAttempts(orm, ['dl_old1', 'dl_old2', 'dl_old3'].map((id) => record(id, 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, { acceptedAt: old })));
    await writeAttempts(orm, [record('dl_new', 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED)]);
    const removed = await deleteOldDeliveries(orm, new Date(Date.now() - 30 * 86_400_000), 2);
    assert.equal(removed, 3);
    assert.equal(await deliveryRow('dl_old1'), undefined);
    assert.equal(await attemptCount('dl_old2'), 0);
    assert.equal((await deliveryRow('dl_new'))!.status, 'succeeded');
  });
});

describe("webhook health and a retrying delivery's times", () => {
  let database: TestDatabase;
  let orm: Orm;
  let log: DeliveryLog;
  const now = Date.now();
  const at = (offsetMs: number) => new Date(now + offsetMs);
  const giveUpAfterMs = 180_000;

  before(async () => {
    database = await createTestDatabase();
    orm = await openOrm(database.url, () => {});
    await migrate(orm);
    // Reading needs neither NATS nor the topology: only the queueing methods use them.
    log = new DeliveryLog(orm, undefined as never, undefined as never, 1024, giveUpAfterMs);
    const of = (workspaceId: string, webhookId: string, startOffsetMs: number, overrides: Partial<AttemptRecord> = {}) => ({ workspaceId, webhookId, startTime: at(startOffsetMs), acceptedAt: at(startOffsetMs - 100), firstAttemptTime: at(startOffsetMs), ...overrides });
    const failed = { statusCode: 503, failureReason: 'status 503' };
    await writeAttempts(orm, [
      // wh_a: one success, and one delivery that failed once 10 minutes ago and then succeeded.
      record('h_a1', 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, of('health', 'wh_a', -3_600_000)),
      record('h_a2', 1, AttemptDecision.ATTEMPT_DECISION_RETRY, of('health', 'wh_a', -600_000, { ...failed, retryTime: at(-570_000) })),
      record('h_a2', 2, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, of('health', 'wh_a', -570_000, { firstAttemptTime: at(-600_000), acceptedAt: at(-600_100) })),
      // wh_b: a delivery waiting for its second attempt, due in 30 s.
      record('h_b1', 1, AttemptDecision.ATTEMPT_DECISION_RETRY, of('health', 'wh_b', -20_000, { statusCode: 0, failureReason: 'timeout after 5000 ms', retryTime: at(30_000) })),
      // wh_c: a success 30 hours ago only: nothing in the last 24 hours, nothing retrying.
      record('h_c1', 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, of('health', 'wh_c', -30 * 3_600_000)),
      // Another workspace's failing webhook.
      record('h_x1', 1, AttemptDecision.ATTEMPT_DECISION_RETRY, of('other', 'wh_x', -1_000, { ...failed, retryTime: at(60_000) })),
    ]);
  });

  after(async () => {
    await orm?.close();
    await database?.drop();
  });

  it("gives each webhook its last failure, its 24 hours' success rate and its retries, within its workspace", async () => {
    const health = await log.health('health', new Date(now));
    assert.deepEqual(health, [
      { webhookId: 'wh_a', lastFailure: { startTime: at(-600_000), statusCode: 503, failureReason: 'status 503' }, attempts24h: 3, succeeded24h: 2, retrying: 0, nextAttemptAt: undefined },
      { webhookId: 'wh_b', lastFailure: { startTime: at(-20_000), statusCode: 0, failureReason: 'timeout after 5000 ms' }, attempts24h: 1, succeeded24h: 0, retrying: 1, nextAttemptAt: at(30_000) },
    ]);
  });

  it('gives a retrying delivery its next attempt and the time it is given up, listed and read alone', async () => {
    const { deliveries } = await log.list('health', { webhookId: 'wh_b' }, 10, '');
    const times = await log.retryTimes(deliveries);
    assert.deepEqual(times.get('h_b1'), { nextAttemptAt: at(30_000), giveUpAt: at(-20_000 + giveUpAfterMs) });
    assert.deepEqual((await log.get('health', 'h_b1')).retry, { nextAttemptAt: at(30_000), giveUpAt: at(-20_000 + giveUpAfterMs) });
    // Ended deliveries have no such times.
    const settled = await log.list('health', { webhookId: 'wh_a' }, 10, '');
    assert.equal((await log.retryTimes(settled.deliveries)).size, 0);
    assert.equal((await log.get('health', 'h_a2')).retry, undefined);
  });
});

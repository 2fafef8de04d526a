// The attempt-log writer and retention against a real PostgreSQL: one statement per batch, idempotent,
// order-insensitive status, and old deliveries removed in small batches.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AttemptDecision, type AttemptRecord } from '@webhooks/contracts';
import { createTestDatabase, type TestDatabase } from '@webhooks/testing';
import { writeAttempts } from '../src/delivery-log/attempt-log.js';
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

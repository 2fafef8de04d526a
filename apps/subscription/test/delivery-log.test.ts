// The attempt-log writer and retention against a real PostgreSQL: one statement per batch, idempotent,
// order-insensitive status, one body per event, and old days dropped whole (delivery-log/partitions.ts).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AttemptDecision, type AttemptRecord } from '@webhooks/contracts';
import { createTestDatabase, type TestDatabase } from '@webhooks/testing';
import { writeAttempts } from '../src/delivery-log/attempt-log.js';
import { DeliveryLog } from '../src/delivery-log/delivery-log.js';
import { dayOf, dropOldDays, partitionDays, queryThrough, withDays } from '../src/delivery-log/partitions.js';
import { migrate, openOrm, type Orm } from '../src/persistence/orm.js';

/** Every record of a delivery carries its event's acceptance time, as the dispatcher's do. */
const acceptedAt = new Date();

function record(deliveryId: string, attempt: number, decision: AttemptDecision, overrides: Partial<AttemptRecord> = {}): AttemptRecord {
  return {
    eventId: `evt_${deliveryId}`, workspaceId: 'acme', webhookId: 'wh_1', eventType: 'contact.created', attemptNumber: attempt,
    startTime: new Date(Date.now() + attempt * 1000), durationMs: 12, statusCode: decision === AttemptDecision.ATTEMPT_DECISION_SUCCEEDED ? 200 : 500,
    failureReason: decision === AttemptDecision.ATTEMPT_DECISION_SUCCEEDED ? '' : 'status 500', responseExcerpt: 'x\u0000y', decision,
    retryTime: undefined, dropReason: decision === AttemptDecision.ATTEMPT_DECISION_DROPPED ? 'attempts exhausted after 4 attempts' : '',
    requestHeaders: { 'webhook-id': 'evt' }, firstAttemptTime: new Date(), deliveryId, retryOfDeliveryId: '',
    body: attempt <= 1 ? Buffer.from('{"id":"evt"}') : Buffer.alloc(0), acceptedAt, traceContext: {}, ...overrides,
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
    (await orm.em.getConnection().execute<{ status: string; attempt_count: number; drop_reason: string | null }[]>('select status, attempt_count, drop_reason from deliveries where id = ?', [id]))[0];
  const bodiesOf = async (workspaceId: string, eventId: string) =>
    (await orm.em.getConnection().execute<{ body: Buffer }[]>('select body from event_bodies where workspace_id = ? and event_id = ?', [workspaceId, eventId])).map((row) => row.body.toString());
  /** Waits until this many sessions wait for the partitions' advisory lock. */
  const waitForLockWaiters = async (count: number) => {
    for (let tries = 0; tries < 200; tries++) {
      const [row] = await orm.em.getConnection().execute<{ n: string }[]>("select count(*) as n from pg_locks where locktype = 'advisory' and not granted");
      if (Number(row!.n) >= count) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.fail(`${count} sessions never waited for the partitions' lock`);
  };
  const attemptCount = async (id: string) => Number((await orm.em.getConnection().execute<{ n: string }[]>('select count(*) as n from attempts where delivery_id = ?', [id]))[0]!.n);

  it('writes a batch once, however often it arrives', async () => {
    const batch = [record('dl_a', 1, AttemptDecision.ATTEMPT_DECISION_RETRY), record('dl_a', 2, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED), record('dl_b', 1, AttemptDecision.ATTEMPT_DECISION_RETRY)];
    assert.deepEqual(await writeAttempts(orm, batch), { deliveries: 2, attempts: 3 });
    assert.deepEqual(await writeAttempts(orm, batch), { deliveries: 2, attempts: 0 });
    assert.equal(await attemptCount('dl_a'), 2);
    const a = await deliveryRow('dl_a');
    assert.equal(a!.status, 'succeeded');
    assert.equal(a!.attempt_count, 2);
    assert.deepEqual(await bodiesOf('acme', 'evt_dl_a'), ['{"id":"evt"}']);
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
    assert.deepEqual({ ...(await deliveryRow('dl_c')) }, { status: 'succeeded', attempt_count: 2, drop_reason: null });
    // A drop is final; a drop without attempt (number 0) keeps the attempt count.
    await writeAttempts(orm, [record('dl_d', 1, AttemptDecision.ATTEMPT_DECISION_RETRY), record('dl_d', 2, AttemptDecision.ATTEMPT_DECISION_RETRY)]);
    await writeAttempts(orm, [record('dl_d', 0, AttemptDecision.ATTEMPT_DECISION_DROPPED, { dropReason: 'webhook disabled' })]);
    await writeAttempts(orm, [record('dl_d', 2, AttemptDecision.ATTEMPT_DECISION_RETRY)]);
    const d = await deliveryRow('dl_d');
    assert.equal(d!.status, 'dropped');
    assert.equal(d!.drop_reason, 'webhook disabled');
    assert.equal(d!.attempt_count, 2);
  });

  it('stores the body of an event delivered to five webhooks once, and gives it with each delivery', async () => {
    const log = new DeliveryLog(orm, undefined as never, undefined as never, 1024);
    const fanOut = ['wh_1', 'wh_2', 'wh_3', 'wh_4', 'wh_5'].map((webhookId, i) =>
      record(`dl_fan${i}`, 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, { webhookId, eventId: 'evt_fan', body: Buffer.from('{"id":"evt_fan"}') }));
    // Two batches, as when the deliveries are written by different record batches.
    await writeAttempts(orm, fanOut.slice(0, 3));
    await writeAttempts(orm, fanOut.slice(3));
    // Before, each delivery row held its own copy: five bodies.
    assert.deepEqual(await bodiesOf('acme', 'evt_fan'), ['{"id":"evt_fan"}']);
    for (let i = 0; i < 5; i++) assert.equal((await log.get('acme', `dl_fan${i}`)).body.toString(), '{"id":"evt_fan"}');
  });

  it('drops whole days older than the retention age, with their attempts and bodies, and keeps the rest', async () => {
    const old = new Date(Date.now() - 40 * 86_400_000);
    await writeAttempts(orm, ['dl_old1', 'dl_old2', 'dl_old3'].map((id) => record(id, 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, { acceptedAt: old })));
    await writeAttempts(orm, [record('dl_new', 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED)]);
    assert.ok((await partitionDays(orm)).includes(dayOf(old)), 'the old day got its partitions on its first write');
    const dropped = await dropOldDays(orm, new Date(Date.now() - 30 * 86_400_000));
    assert.deepEqual(dropped, [dayOf(old)]);
    assert.equal(await deliveryRow('dl_old1'), undefined);
    assert.equal(await attemptCount('dl_old2'), 0);
    assert.deepEqual(await bodiesOf('acme', 'evt_dl_old3'), []);
    assert.equal((await deliveryRow('dl_new'))!.status, 'succeeded');
    // The run also made the next days, so the first write of tomorrow needs no partition of its own.
    const days = await partitionDays(orm);
    for (let n = 0; n <= 2; n++) assert.ok(days.includes(dayOf(new Date(Date.now() + n * 86_400_000))), `day +${n} made ahead`);
    assert.ok(!days.includes(dayOf(old)));
  });

  it('pages newest first across days, neither skipping nor repeating, whether or not the newest day fills a page', async () => {
    const log = new DeliveryLog(orm, undefined as never, undefined as never, 1024);
    const hour = 3_600_000;
    // Three deliveries within the last day, then one 2 days, one 3 days and one 10 days ago (each its own partition).
    const ages = [1, 2, 3, 49, 73, 241];
    await writeAttempts(orm, ages.map((age) => record(`dl_page_${age}`, 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, { workspaceId: 'paging', acceptedAt: new Date(Date.now() - age * hour) })));
    const pages = async (pageSize: number, filter = {}) => {
      const seen: string[][] = [];
      let token = '';
      do {
        const page = await log.list('paging', filter, pageSize, token);
        seen.push(page.deliveries.map((d) => d.id));
        token = page.nextPageToken;
      } while (token);
      return seen;
    };
    assert.deepEqual(await pages(2), [['dl_page_1', 'dl_page_2'], ['dl_page_3', 'dl_page_49'], ['dl_page_73', 'dl_page_241']]);
    assert.deepEqual(await pages(4), [['dl_page_1', 'dl_page_2', 'dl_page_3', 'dl_page_49'], ['dl_page_73', 'dl_page_241']]);
    assert.deepEqual(await pages(50), [['dl_page_1', 'dl_page_2', 'dl_page_3', 'dl_page_49', 'dl_page_73', 'dl_page_241']]);
    // A range that ends days ago looks first in the day before its end.
    assert.deepEqual(await pages(1, { from: new Date(Date.now() - 100 * hour), to: new Date(Date.now() - 48 * hour) }), [['dl_page_49'], ['dl_page_73']]);
  });

  it('lets two replicas run retention at once while records are written: each old day is dropped once, nothing fails', async () => {
    const replica = await openOrm(database.url, () => {});
    try {
      const days = [50, 51].map((n) => new Date(Date.now() - n * 86_400_000));
      await writeAttempts(orm, days.map((day, i) => record(`dl_both${i}`, 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, { acceptedAt: day })));
      const cutoff = new Date(Date.now() - 30 * 86_400_000);
      const [mine, theirs] = await Promise.all([
        dropOldDays(orm, cutoff),
        dropOldDays(replica, cutoff),
        writeAttempts(replica, [record('dl_during', 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED)]),
      ]);
      // Each replica lists the days before it drops them, so both may name a day; the drop itself is
      // serialised and idempotent.
      assert.ok([...mine, ...theirs].includes(dayOf(days[0]!)) && [...mine, ...theirs].includes(dayOf(days[1]!)));
      const left = await partitionDays(orm);
      assert.ok(!left.includes(dayOf(days[0]!)) && !left.includes(dayOf(days[1]!)));
      assert.equal((await deliveryRow('dl_during'))!.status, 'succeeded');
    } finally {
      await replica.close();
    }
  });

  it('lets two replicas make the same new day at once: one makes it, the other finds it, both write', async () => {
    const replicas = [await openOrm(database.url, () => {}), await openOrm(database.url, () => {})];
    const holder = await openOrm(database.url, () => {});
    try {
      const day = new Date(Date.now() - 60 * 86_400_000);
      // The race forced: a third session holds the partitions' lock, so both replicas are inside
      // log_ensure_partitions, waiting, before either makes the day.
      const lockSql = "SELECT pg_advisory_lock(hashtext('webhooks.log_partitions'))";
      const connection = await (await holder.em.getConnection().getNativeClient()).connect();
      await connection.query(lockSql);
      const writes = replicas.map((replica, i) => writeAttempts(replica, [record(`dl_race${i}`, 1, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, { acceptedAt: day })]));
      await waitForLockWaiters(2);
      await connection.query("SELECT pg_advisory_unlock(hashtext('webhooks.log_partitions'))");
      connection.release();
      assert.deepEqual(await Promise.all(writes), [{ deliveries: 1, attempts: 1 }, { deliveries: 1, attempts: 1 }]);
      assert.ok((await partitionDays(orm)).includes(dayOf(day)));
    } finally {
      for (const replica of [...replicas, holder]) await replica.close();
    }
  });

  it('writes once more when the answer to making a day was lost after PostgreSQL made it', async () => {
    const day = dayOf(new Date(Date.now() - 70 * 86_400_000));
    const query = queryThrough(orm);
    let lost = false;
    // The statement runs, then its answer is lost (a timeout on the way back).
    const losing: typeof query = async (sql, params) => {
      await query(sql, params);
      if (!lost) {
        lost = true;
        throw new Error('the answer was lost');
      }
    };
    await assert.rejects(withDays(orm, losing, [day], async () => 'written'), /the answer was lost/);
    assert.ok((await partitionDays(orm)).includes(day), 'the day was made all the same');
    // The batch comes again (it was not acked): this time the day is asked for again, and exists.
    assert.equal(await withDays(orm, losing, [day], async () => 'written'), 'written');
  });

  it('writes a late record of a day another process dropped: the day is made again', async () => {
    const late = new Date(Date.now() - 45 * 86_400_000);
    await writeAttempts(orm, [record('dl_late1', 1, AttemptDecision.ATTEMPT_DECISION_RETRY, { acceptedAt: late })]);
    // Another subscription replica's retention drops the day this process wrote to (and remembers).
    for (const table of ['deliveries', 'attempts', 'event_bodies']) {
      await orm.em.getConnection().execute(`drop table ${table}_p${dayOf(late).replaceAll('-', '')}`);
    }
    // Before the retry on a missing partition, PostgreSQL refused the batch: "no partition of relation".
    assert.deepEqual(await writeAttempts(orm, [record('dl_late1', 2, AttemptDecision.ATTEMPT_DECISION_SUCCEEDED, { acceptedAt: late })]), { deliveries: 1, attempts: 1 });
    assert.equal((await deliveryRow('dl_late1'))!.status, 'succeeded');
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

describe('the migration to the partitioned log', () => {
  let database: TestDatabase;
  let orm: Orm;

  before(async () => {
    database = await createTestDatabase();
    orm = await openOrm(database.url, () => {});
  });

  after(async () => {
    await orm?.close();
    await database?.drop();
  });

  it('keeps every delivery and attempt, in the partition of its day, and each event body once', async () => {
    await orm.migrator.up({ to: 'Migration20261205120000_webhook_activity' });
    const connection = orm.em.getConnection();
    const today = new Date();
    const old = new Date(Date.now() - 20 * 86_400_000);
    // The log as the earlier schema held it: one event to three webhooks (three copies of its body), and
    // an older delivery that was dropped after two attempts.
    for (const [id, webhookId] of [['dl_m1', 'wh_1'], ['dl_m2', 'wh_2'], ['dl_m3', 'wh_3']] as const) {
      await connection.execute(
        `insert into deliveries (id, workspace_id, webhook_id, event_id, event_type, status, attempt_count, body, created_at, updated_at)
         values (?, 'acme', ?, 'evt_m', 'contact.created', 'succeeded', 1, ?, ?, ?)`,
        [id, webhookId, Buffer.from('{"id":"evt_m"}'), today, today],
      );
      await connection.execute(
        `insert into attempts (delivery_id, number, start_time, duration_ms, status_code, failure_reason, response_excerpt, request_headers, decision)
         values (?, 1, ?, 10, 200, '', 'ok', '{}', 'succeeded')`,
        [id, today],
      );
    }
    await connection.execute(
      `insert into deliveries (id, workspace_id, webhook_id, event_id, event_type, status, drop_reason, attempt_count, body, created_at, updated_at)
       values ('dl_old', 'acme', 'wh_1', 'evt_old', 'contact.created', 'dropped', 'attempts exhausted', 2, ?, ?, ?)`,
      [Buffer.from('{"id":"evt_old"}'), old, old],
    );
    for (const number of [1, 2]) {
      await connection.execute(
        `insert into attempts (delivery_id, number, start_time, duration_ms, status_code, failure_reason, response_excerpt, request_headers, decision)
         values ('dl_old', ?, ?, 10, 500, 'status 500', 'no', '{}', ?)`,
        [number, new Date(old.getTime() + number * 30_000), number === 2 ? 'dropped' : 'retry'],
      );
    }

    await migrate(orm);

    const counts = await connection.execute<{ deliveries: string; attempts: string; bodies: string }[]>(
      'select (select count(*) from deliveries) as deliveries, (select count(*) from attempts) as attempts, (select count(*) from event_bodies) as bodies',
    );
    assert.deepEqual({ ...counts[0] }, { deliveries: '4', attempts: '5', bodies: '2' });
    const log = new DeliveryLog(orm, undefined as never, undefined as never, 1024);
    const dropped = await log.get('acme', 'dl_old');
    assert.deepEqual({ status: dropped.delivery.status, attempts: dropped.attempts.map((a) => a.number), body: dropped.body.toString() }, { status: 'dropped', attempts: [1, 2], body: '{"id":"evt_old"}' });
    assert.equal((await log.get('acme', 'dl_m2')).body.toString(), '{"id":"evt_m"}');
    // Each row is in the partition of its delivery's day.
    const placed = await connection.execute<{ partition: string }[]>(`select distinct tableoid::regclass::text as partition from attempts where delivery_id = 'dl_old'`);
    assert.deepEqual(placed.map((row) => row.partition), [`attempts_p${dayOf(old).replaceAll('-', '')}`]);
    assert.ok((await partitionDays(orm)).includes(dayOf(today)));
  });
});

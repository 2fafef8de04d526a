// The trip consumer against real NATS and a real SMTP server that takes longer than the ack wait to
// accept a message: the trip must not be redelivered (and a second email sent) while the send runs.
// The control plane is stood in for by a fixed workspace: what is under test is NATS and SMTP.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BreakerTripped, type Workspace } from '@webhooks/contracts';
import { jetstream, jetstreamManager } from '@webhooks/messaging';
import { createLogger } from '@webhooks/telemetry';
import { createTestTopology, SmtpSink, type TestTopology } from '@webhooks/testing';
import { createMailer } from './mailer.js';
import { consumeTripsForNotices, TripNotifier, type workspaceDirectory } from './notifier.js';
import { sendBudget } from './send-budget.js';

const ackWaitMs = 2_000;
const slowAnswerMs = 5_000;

function trip(tripId: string): BreakerTripped {
  return { tripId, workspaceId: 'acme', windowSeconds: 1800, threshold: 30, failureCount: 31, tripTime: new Date(), webhooks: [{ webhookId: 'wh_1', name: 'crm', url: 'https://crm.example.com/hook', failureCount: 31, lastErrors: [], routeVersion: 1 }] } as BreakerTripped;
}

describe('trip consumer with a slow SMTP server', () => {
  let nats: TestTopology;
  let sink: SmtpSink;

  before(async () => {
    nats = await createTestTopology();
    sink = await SmtpSink.start();
  });

  after(async () => {
    await sink?.pause();
    await nats?.remove();
  });

  it('sends one email for one trip when the server answers DATA after more than the ack wait', async () => {
    const logger = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');
    const workspace = { id: 'acme', name: 'Acme', notificationEmails: ['ops@acme.example'] } as unknown as Workspace;
    const directory = { get: async () => workspace, close: () => {} } as unknown as ReturnType<typeof workspaceDirectory>;
    // The SMTP timeouts stay above the server's answer time: the send is slow, not failed.
    const budget = sendBudget({ ackWaitMs, connectionTimeoutMs: 10_000, greetingTimeoutMs: 10_000, socketTimeoutMs: 30_000 });
    const mailer = createMailer({ smtpUrl: sink.url, requireTls: false, from: 'Webhooks <webhooks@localhost>', outboxDir: '' }, logger);
    const notifier = new TripNotifier(directory, mailer, { maxNoticeAgeMs: 86_400_000, retryBaseMs: 1_000, retryMaxMs: 5_000, keepAliveMs: budget.keepAliveMs }, logger);
    const { topology: t, nc } = nats;
    const trips = await consumeTripsForNotices(jetstream(nc), await jetstreamManager(nc), t, notifier, logger, { ackWaitMs });
    const emailsFor = (tripId: string) => sink.messages.filter((mail) => mail.messageId === `<trip-${tripId}@webhook-platform>`).length;
    try {
      sink.dataDelayMs = slowAnswerMs;
      await jetstream(nc).publish(t.subjects.breakerTripped('acme'), BreakerTripped.encode(trip('acme-1')).finish());
      await sink.waitForMessages(1, 30_000);
      // A fence: a second trip's email comes after any redelivery of the first had its chance to be sent.
      sink.dataDelayMs = 0;
      await jetstream(nc).publish(t.subjects.breakerTripped('acme'), BreakerTripped.encode(trip('acme-2')).finish());
      const deadline = Date.now() + 30_000;
      while (emailsFor('acme-2') === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(emailsFor('acme-2'), 1, 'the fence trip was notified');
      assert.equal(emailsFor('acme-1'), 1, 'emails for the slow trip');
    } finally {
      await trips.stop();
      mailer.close();
    }
  });

  it('pulls again after its consumer was removed under it, and says so meanwhile', async () => {
    const logger = createLogger('test', process.env.TEST_LOG_LEVEL ?? 'silent');
    const workspace = { id: 'acme', name: 'Acme', notificationEmails: ['ops@acme.example'] } as unknown as Workspace;
    const directory = { get: async () => workspace, close: () => {} } as unknown as ReturnType<typeof workspaceDirectory>;
    const mailer = createMailer({ smtpUrl: sink.url, requireTls: false, from: 'Webhooks <webhooks@localhost>', outboxDir: '' }, logger);
    const notifier = new TripNotifier(directory, mailer, { maxNoticeAgeMs: 86_400_000, retryBaseMs: 1_000, retryMaxMs: 5_000, keepAliveMs: 500 }, logger);
    const { topology: t, nc } = nats;
    const health: boolean[] = [];
    const trips = await consumeTripsForNotices(jetstream(nc), await jetstreamManager(nc), t, notifier, logger, { ackWaitMs, onHealth: (ok) => health.push(ok) });
    try {
      sink.dataDelayMs = 0;
      await (await jetstreamManager(nc)).consumers.delete(t.streams.breaker, t.consumers.tripsToNotifier);
      await jetstream(nc).publish(t.subjects.breakerTripped('acme'), BreakerTripped.encode(trip('acme-3')).finish());
      const deadline = Date.now() + 30_000;
      while (!sink.messages.some((mail) => mail.messageId === '<trip-acme-3@webhook-platform>') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(sink.messages.some((mail) => mail.messageId === '<trip-acme-3@webhook-platform>'), 'the trip published after the removal was notified');
      assert.deepEqual([...new Set(health)], [false, true], 'readiness was told it failed, then that it works again');
    } finally {
      await trips.stop();
      mailer.close();
    }
  });
});

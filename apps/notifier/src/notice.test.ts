import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { BreakerTripped } from '@webhooks/contracts';
import { createLogger } from '@webhooks/telemetry';
import { createMailer } from './mailer.js';
import { composeNotice } from './notice.js';

const trip: BreakerTripped = {
  tripId: 'acme-41',
  workspaceId: 'acme',
  windowSeconds: 1800,
  threshold: 30,
  failureCount: 31,
  tripTime: new Date('2026-11-24T10:00:00.000Z'),
  webhooks: [
    { webhookId: 'wh_1', name: 'CRM <sync>', url: 'https://crm.example.com/hook', failureCount: 25, routeVersion: 1, lastErrors: [{ time: new Date('2026-11-24T09:59:00.000Z'), reason: 'timeout: no complete response within 5000 ms' }] },
    { webhookId: 'wh_2', name: '', url: 'https://bi.example.com/in', failureCount: 6, routeVersion: 1, lastErrors: [{ time: new Date('2026-11-24T09:58:00.000Z'), reason: 'status 502' }] },
  ],
};

describe('the disable notice', () => {
  const notice = composeNotice(trip, 'Acme Support');

  it('names the workspace, every webhook, the count and window, the last errors and the way back', () => {
    assert.equal(notice.subject, '2 webhooks were disabled in Acme Support: 31 failed attempts in 30 minutes');
    for (const expected of ['Acme Support', 'CRM <sync>', 'https://crm.example.com/hook', 'wh_2', 'https://bi.example.com/in', 'failed 31 times within 30 minutes', 'timeout: no complete response', 'status 502', 'Settings > Integrations > Webhooks', 'Activate', 'ActivateWebhook']) {
      assert.ok(notice.text.includes(expected), `text lacks ${expected}`);
    }
    assert.ok(notice.html.includes('CRM &lt;sync&gt;'), 'html escapes names');
    assert.ok(!notice.html.includes('CRM <sync>'));
    assert.equal(notice.messageId, '<trip-acme-41@webhook-platform>');
  });

  it('is written to the outbox as an .eml file when no SMTP server is configured', async () => {
    const outbox = mkdtempSync(join(tmpdir(), 'outbox-test-'));
    try {
      const mailer = createMailer({ smtpUrl: '', requireTls: false, from: 'Webhooks <webhooks@localhost>', outboxDir: outbox }, createLogger('test', 'silent'));
      await mailer.send(['ops@acme.example'], notice);
      const [file] = readdirSync(outbox);
      const eml = readFileSync(join(outbox, file!), 'utf8');
      assert.match(eml, /^To: ops@acme.example$/m);
      assert.match(eml, /^Message-ID: <trip-acme-41@webhook-platform>$/m);
      assert.match(eml, /^Subject: 2 webhooks were disabled in Acme Support/m);
      mailer.close();
    } finally {
      rmSync(outbox, { recursive: true, force: true });
    }
  });
});

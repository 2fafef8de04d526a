// The portal against the real services (built, as processes): its API's authentication and workspace
// scoping, then the page in Debian's Chromium driven by Playwright: add a webhook (a refused internal URL
// first), a test event and its attempt in the log, a breaker trip and Activate, Recover, German.
// Screenshots of the main screens go to <tmp>/webhooks-portal-screenshots (or PORTAL_SCREENSHOT_DIR).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CreateWebhookRequest, DeliveryStatus, Plan, type Event } from '@webhooks/contracts';
import { portalSessionKey, signPortalSession } from '@webhooks/domain';
import { callUnary, expectStatus, HttpReceiver, startSystem, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';

const sessionKey = 'portal-test-session-key-0123456789abcdef';
const operatorToken = 'operator-token-0123456789';
const screenshots = process.env.PORTAL_SCREENSHOT_DIR ?? join(tmpdir(), 'webhooks-portal-screenshots');

function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  try {
    return execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('Chromium is missing: run bash scripts/ensure-chromium.sh (or sudo apt-get install -y chromium)');
  }
}

function contactCreated(id: string, workspaceId: string): Event {
  return {
    id, workspaceId, type: 'contact.created', occurredAt: new Date(),
    data: { $case: 'contactCreated', value: { contact: { id: 'c_1', firstName: 'Ana', lastName: 'Lima', email: 'ana@example.com', phone: '', language: 'pt', countryCode: 'BR', profilePicUrl: '', assignee: undefined, tags: [], customFields: {}, createdAt: new Date(), updatedAt: undefined } } },
  } as Event;
}

describe('webhooks portal', () => {
  let system: RunningSystem;
  let portal = '';
  let good: HttpReceiver;
  let failing: HttpReceiver;
  let browser: Browser;
  const workspaceId = uniqueName('portal');
  const otherWorkspace = uniqueName('other');
  const starterWorkspace = uniqueName('starter');
  let otherWebhookId = '';

  const session = async (id: string) =>
    (await callUnary(system.subscription, system.subscription.createPortalSession, { workspaceId: id, ttl: undefined }, testToken));
  const api = (path: string, token: string | undefined, init: { method?: string; body?: unknown; workspace?: string } = {}) =>
    fetch(`${portal}/api${path}`, {
      method: init.method ?? 'GET',
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.workspace ? { 'x-portal-workspace': init.workspace } : {}), 'content-type': 'application/json' },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });

  before(async () => {
    mkdirSync(screenshots, { recursive: true });
    // A breaker of 3 failed attempts, and quick retries, so a failing endpoint trips it in a second.
    // Three failed attempts in 100 ms, then 12 s until the fourth: long enough to see a retrying delivery.
    system = await startSystem({ RETRY_DELAYS: '50ms,50ms,12s', GIVE_UP_AFTER: '30s', BREAKER_THRESHOLD: '3', PORTAL_SESSION_KEY: sessionKey });
    const process = await system.startService('portal', { PORTAL_HTTP_PORT: '0', PORTAL_OPS_PORT: '0', PORTAL_API_TOKEN: testToken, PORTAL_OPERATOR_TOKENS: `alice:${operatorToken}`, PORTAL_FRAME_ANCESTORS: 'https://app.example.com' });
    portal = `http://127.0.0.1:${process.port('httpPort')}`;
    good = await HttpReceiver.start();
    failing = await HttpReceiver.start((_req, res) => {
      res.statusCode = 503;
      res.end('maintenance');
    });
    for (const [id, plan] of [[workspaceId, Plan.PLAN_ADVANCED], [otherWorkspace, Plan.PLAN_ADVANCED], [starterWorkspace, Plan.PLAN_STARTER]] as const) {
      await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id, name: `Acme ${id.slice(0, 6)}`, plan, notificationEmails: [] } }, testToken);
    }
    otherWebhookId = (await callUnary(system.subscription, system.subscription.createWebhook, CreateWebhookRequest.fromPartial({ workspaceId: otherWorkspace, name: 'theirs', url: good.url, eventTypes: ['contact.created'] }), testToken)).webhook!.id;
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
  });

  after(async () => {
    await browser?.close();
    await system?.stop();
    await good?.close();
    await failing?.close();
  });

  describe('API', () => {
    it("serves a session its own workspace and nothing of another's", async () => {
      const { token } = await session(workspaceId);
      const mine = await api('/session', token);
      assert.equal(mine.status, 200);
      assert.equal(((await mine.json()) as { workspace: { id: string } }).workspace.id, workspaceId);
      // Naming another workspace does not widen a session: the header is for operators only.
      const list = (await (await api('/webhooks', token, { workspace: otherWorkspace })).json()) as { webhooks: unknown[] };
      assert.deepEqual(list.webhooks, []);
      for (const [method, path] of [['POST', `/webhooks/${otherWebhookId}/deactivate`], ['DELETE', `/webhooks/${otherWebhookId}`], ['PATCH', `/webhooks/${otherWebhookId}`], ['GET', `/webhooks/${otherWebhookId}/stats`]] as const) {
        const response = await api(path, token, { method, body: method === 'PATCH' ? { name: 'stolen' } : undefined });
        assert.equal(response.status, 404, `${method} ${path}`);
      }
      const theirs = await callUnary(system.subscription, system.subscription.getWebhook, { workspaceId: otherWorkspace, webhookId: otherWebhookId }, testToken);
      assert.equal(theirs.webhook!.name, 'theirs');
    });

    it('refuses a missing, forged or expired token, and the session token is no gRPC bearer token', async () => {
      assert.equal((await api('/webhooks', undefined)).status, 401);
      assert.equal((await api('/webhooks', 'local-dev-token')).status, 401);
      const expired = signPortalSession(portalSessionKey(sessionKey), { workspaceId, expiresAt: new Date(Date.now() - 1000) });
      const refused = await api('/webhooks', expired);
      assert.equal(refused.status, 401);
      assert.match(((await refused.json()) as { error: { message: string } }).error.message, /expired/);
      const forged = signPortalSession(portalSessionKey('some-other-key-of-32-characters-or-more'), { workspaceId, expiresAt: new Date(Date.now() + 60_000) });
      assert.equal((await api('/webhooks', forged)).status, 401);
      const { token } = await session(workspaceId);
      await expectStatus(callUnary(system.subscription, system.subscription.listWebhooks, { workspaceId, pageSize: 0, pageToken: '', status: 0 }, token), status.UNAUTHENTICATED);
    });

    it('refuses to carry endpoint authentication to another origin unless it is set again', async () => {
      const id = uniqueName('moves');
      await callUnary(system.subscription, system.subscription.upsertWorkspace, { workspace: { id, name: 'Moves', plan: Plan.PLAN_ADVANCED, notificationEmails: [] } }, testToken);
      const { token } = await session(id);
      const created = await api('/webhooks', token, { method: 'POST', body: { name: 'crm', url: good.url, eventTypes: ['contact.created'], auth: { kind: 'basic', username: 'acme', password: 'portal-pa55' } } });
      assert.equal(created.status, 200);
      const webhookId = ((await created.json()) as { webhook: { id: string } }).webhook.id;
      const elsewhere = good.url.replace('127.0.0.1', 'localhost');
      const refused = await api(`/webhooks/${webhookId}`, token, { method: 'PATCH', body: { url: elsewhere } });
      assert.equal(refused.status, 400);
      assert.match(((await refused.json()) as { error: { message: string } }).error.message, /^webhook\.auth: the url moves from http:\/\/127\.0\.0\.1:\d+ to http:\/\/localhost:\d+/);
      const unchanged = (await (await api('/webhooks', token)).json()) as { webhooks: { url: string; authKind: string }[] };
      assert.deepEqual(unchanged.webhooks.map((w) => [w.url, w.authKind]), [[good.url, 'basic']]);
      const moved = await api(`/webhooks/${webhookId}`, token, { method: 'PATCH', body: { url: elsewhere, auth: { kind: 'none' } } });
      assert.equal(moved.status, 200);
      const { webhook } = (await moved.json()) as { webhook: { url: string; authKind: string } };
      assert.deepEqual([webhook.url, webhook.authKind], [elsewhere, 'none']);
    });

    it('lets an operator pick any workspace, and records what they change under their name', async () => {
      const response = await api('/webhooks', operatorToken, { workspace: otherWorkspace });
      assert.equal(response.status, 200);
      assert.equal(((await response.json()) as { webhooks: { id: string }[] }).webhooks[0]!.id, otherWebhookId);
      assert.equal((await api('/webhooks', operatorToken)).status, 400);
      assert.equal((await api(`/webhooks/${otherWebhookId}/deactivate`, operatorToken, { method: 'POST', workspace: otherWorkspace })).status, 200);
      assert.equal((await api(`/webhooks/${otherWebhookId}/activate`, operatorToken, { method: 'POST', workspace: otherWorkspace })).status, 200);
      const { activity } = (await (await api(`/activity?webhookId=${otherWebhookId}`, operatorToken, { workspace: otherWorkspace })).json()) as { activity: { kind: string; actor: { kind: string; name: string } }[] };
      assert.deepEqual(activity.map((a) => [a.kind, a.actor.kind, a.actor.name]), [['activated', 'operator', 'alice'], ['deactivated', 'operator', 'alice'], ['created', 'api_token', `${testToken.slice(0, 4)}…`]]);
    });

    it('sends a strict Content-Security-Policy with the configured frame ancestors', async () => {
      const page = await fetch(`${portal}/`);
      assert.equal(page.status, 200);
      const csp = page.headers.get('content-security-policy') ?? '';
      assert.match(csp, /script-src 'self'/);
      assert.match(csp, /frame-ancestors https:\/\/app\.example\.com/);
      assert.doesNotMatch(csp, /unsafe-inline/);
      assert.doesNotMatch(await page.text(), /<script>(?!<\/script>)/);
    });
  });

  describe('in a browser', () => {
    let page: Page;
    const shot = (name: string) => page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
    const row = (name: string) => page.getByTestId(`webhook-${name}`);
    const updated = (id: string) => ({ ...contactCreated(id, workspaceId), type: 'contact.updated', data: { $case: 'contactUpdated', value: { contact: contactCreated(id, workspaceId).data!.value!.contact, changedFields: ['email'] } } }) as unknown as Event;

    before(async () => {
      page = await browser.newPage({ viewport: { width: 1400, height: 900 }, locale: 'en-US' });
      page.on('pageerror', (error) => console.error('page error:', error));
      await page.goto((await session(workspaceId)).url.replace('http://127.0.0.1:8080', portal));
      await page.getByText('0 of 3 failed attempts in the last 30 minutes').waitFor();
    });

    after(async () => {
      await page?.close();
    });

    it('shows when the session ends, with its date', async () => {
      assert.match((await page.getByText(/^Session ends /).textContent()) ?? '', /^Session ends [A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}\s?[AP]M$/);
    });

    it('adds a webhook from the form, showing the URL policy next to a refused internal URL', async () => {
      await page.getByRole('button', { name: 'Add webhook' }).click();
      await page.getByLabel('Name', { exact: true }).fill('orders');
      await page.getByLabel('Endpoint URL').fill('http://169.254.169.254/latest/meta-data');
      await page.getByRole('checkbox', { name: /contact\.created/ }).check();
      await page.getByRole('button', { name: 'Example payload' }).first().click();
      await page.getByRole('button', { name: 'Create webhook' }).click();
      await page.getByTestId('error-url').waitFor();
      assert.match((await page.getByTestId('error-url').textContent()) ?? '', /metadata/);
      await shot('webhook-form-refused-url');
      await page.getByLabel('Endpoint URL').fill(good.url);
      await page.getByRole('button', { name: 'Add header' }).click();
      await page.getByLabel('Header name').fill('x-api-key');
      await page.getByLabel('Value').fill('secret-value');
      await page.getByRole('button', { name: 'Create webhook' }).click();
      const secret = page.getByTestId('signing-secret');
      await secret.waitFor();
      assert.match((await secret.textContent()) ?? '', /^whsec_/);
      await shot('signing-secret-once');
      await page.getByRole('button', { name: 'Done' }).click();
      await row('orders').getByText('Active').waitFor();
      await shot('webhooks-list');
    });

    it('sends a test event, receives it at the endpoint and shows the attempt in the log', async () => {
      await row('orders').getByRole('button', { name: 'Send test event' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Send', exact: true }).click();
      const [request] = await good.waitForRequests(1);
      assert.equal(JSON.parse(request!.body).type, 'contact.created');
      const eventId = JSON.parse(request!.body).id as string;
      await page.getByRole('tab', { name: 'Delivery log' }).click();
      const delivery = page.getByTestId(`delivery-${eventId}`);
      await delivery.getByText('Succeeded').waitFor();
      await delivery.getByRole('button', { name: 'Details' }).click();
      const details = page.getByTestId('delivery-details');
      await details.getByText('Attempt 1').waitFor();
      assert.match((await details.textContent()) ?? '', /\[redacted\]/);
      assert.match((await page.getByTestId('delivery-body').textContent()) ?? '', new RegExp(eventId));
      await shot('delivery-log');
      await page.getByRole('tab', { name: 'Webhooks' }).click();
    });

    it('sets a rate limit and HTTP Basic authentication from the form: the kind is shown, the credentials never, and deliveries carry them', async () => {
      const password = 'portal-basic-pass-1';
      await row('orders').getByRole('button', { name: 'Edit' }).click();
      await page.getByLabel(/Rate limit/).fill('5');
      await page.getByLabel('Endpoint authentication').selectOption('basic');
      await page.getByLabel('User name').fill('portal-user');
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Save' }).click();
      await row('orders').getByTestId('endpoint-options').getByText('at most 5/s · authentication: HTTP Basic').waitFor();
      // Write-only: the edit form names the kind with empty credential fields, and no answer holds the password.
      await row('orders').getByRole('button', { name: 'Edit' }).click();
      await page.getByTestId('auth-set').getByText(/Set: HTTP Basic/).waitFor();
      assert.equal(await page.getByLabel(/Rate limit/).inputValue(), '5');
      assert.equal(await page.getByLabel('Password').inputValue(), '');
      assert.equal(await page.getByLabel('User name').inputValue(), '');
      // The custom header's value is write-only too: a placeholder stands for it, and saving keeps it.
      assert.equal(await page.getByLabel('Value').inputValue(), '[redacted]');
      await page.getByTestId('headers-hidden').waitFor();
      await shot('webhook-form-endpoint-options');
      assert.doesNotMatch(await page.content(), new RegExp(password));
      const listed = await page.evaluate(async () => (await fetch('/api/webhooks', { headers: { authorization: `Bearer ${(JSON.parse(sessionStorage.getItem('portal.credentials')!) as { token: string }).token}` } })).text());
      assert.match(listed, /"authKind":"basic"/);
      assert.doesNotMatch(listed, new RegExp(password));
      assert.match(listed, /"headers":\{"x-api-key":"\[redacted\]"\}/);
      assert.doesNotMatch(listed, /secret-value/);
      await page.getByRole('button', { name: 'Cancel' }).click();
      // The dispatcher presents them: the next test event arrives with the Basic credentials.
      const before = good.requests.length;
      await row('orders').getByRole('button', { name: 'Send test event' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Send', exact: true }).click();
      const [request] = (await good.waitForRequests(before + 1)).slice(before);
      assert.equal(request!.headers.authorization, `Basic ${Buffer.from(`portal-user:${password}`).toString('base64')}`);
      // Saved through the form with its placeholder, the header kept the value it was created with.
      assert.equal(request!.headers['x-api-key'], 'secret-value');
      await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
    });

    it("shows a failing webhook's health and its retrying delivery's next attempt, then the tripped breaker; activates the webhook and recovers its dropped deliveries in order", async () => {
      await callUnary(system.subscription, system.subscription.createWebhook, CreateWebhookRequest.fromPartial({ workspaceId, name: 'crm', url: failing.url, eventTypes: ['contact.updated'] }), testToken);
      for (const id of ['u1', 'u2', 'u3']) await callUnary(system.ingest, system.ingest.publishEvent, { event: updated(id) }, testToken);
      // u1 fails three times (the breaker tolerates three) and waits 12 s for its fourth attempt.
      await row('crm').getByTestId('retrying').getByText(/^Retrying 1 delivery; next attempt /).waitFor({ timeout: 15_000 });
      assert.match((await row('crm').getByTestId('last-failure').textContent()) ?? '', /^Last failure .+: status 503$/);
      assert.equal(await row('crm').getByTestId('success-rate').textContent(), '0 % of 3 attempts succeeded');
      await shot('webhook-health');
      await page.getByRole('tab', { name: 'Delivery log' }).click();
      await page.getByTestId('delivery-u1').getByTestId('next-attempt').getByText(/^Next attempt .+; dropped if still failing at .+/).waitFor();
      await page.getByTestId('delivery-u1').getByRole('button', { name: 'Details' }).click();
      await page.getByTestId('details-next-attempt').waitFor();
      await shot('retrying-delivery');
      // The times shown are the schedule's: the fourth attempt 12.1 s after the first (50 ms + 50 ms + 12 s),
      // and no attempt later than GIVE_UP_AFTER (30 s) after the first.
      const u1 = (await callUnary(system.deliveryLog, system.deliveryLog.listDeliveries, { workspaceId, webhookId: '', eventType: 'contact.updated', status: DeliveryStatus.DELIVERY_STATUS_RETRYING, pageSize: 10, pageToken: '' }, testToken)).deliveries.find((d) => d.eventId === 'u1')!;
      const { delivery } = await callUnary(system.deliveryLog, system.deliveryLog.getDelivery, { workspaceId, deliveryId: u1.id }, testToken);
      const first = delivery!.attempts[0]!.startTime!.getTime();
      assert.equal(delivery!.giveUpTime!.getTime() - first, 30_000);
      const planned = delivery!.nextAttemptTime!.getTime() - first;
      assert.ok(planned >= 12_090 && planned <= 12_200, `the fourth attempt is planned ${planned} ms after the first`);
      assert.deepEqual([u1.nextAttemptTime, u1.giveUpTime], [delivery!.nextAttemptTime, delivery!.giveUpTime], 'the list answers the same times');
      await page.getByRole('button', { name: 'Close' }).click();
      await page.getByRole('tab', { name: 'Webhooks' }).click();
      await row('crm').getByText('Disabled').waitFor({ timeout: 30_000 });
      await row('crm').getByText(/too many failed attempts/).waitFor();
      await shot('breaker-tripped');
      // Every event of the tripped webhook ends dropped (attempts exhausted or webhook disabled).
      for (let i = 0; ; i++) {
        const { deliveries } = await callUnary(system.deliveryLog, system.deliveryLog.listDeliveries, { workspaceId, webhookId: '', eventType: 'contact.updated', status: DeliveryStatus.DELIVERY_STATUS_DROPPED, pageSize: 100, pageToken: '' }, testToken);
        if (deliveries.length === 3) break;
        if (i > 150) assert.fail(`only ${deliveries.length} of 3 deliveries were dropped`);
        await new Promise((r) => setTimeout(r, 100));
      }
      failing.respondWith((_req, res) => res.end('back'));
      const before = failing.requests.length;
      await row('crm').getByRole('button', { name: 'Activate' }).click();
      await row('crm').getByText('Active').waitFor();
      await row('crm').getByRole('button', { name: 'Recover' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Recover' }).click();
      await page.getByText('3 deliveries queued again.').waitFor();
      await shot('recover');
      const arrived = (await failing.waitForRequests(before + 3)).slice(before);
      assert.deepEqual(arrived.map((r) => JSON.parse(r.body).id), ['u1', 'u2', 'u3']);
      await row('crm').getByRole('button', { name: 'Chart' }).click();
      await page.getByTestId('chart').waitFor();
      // Counts and latency each on an axis of their own; every hour answers a hover with its figures.
      await page.getByTestId('axis-counts').waitFor({ state: 'attached' });
      await page.getByTestId('axis-latency').waitFor({ state: 'attached' });
      const hours = page.getByTestId('chart-hour');
      assert.equal(await hours.count(), 24);
      assert.match((await hours.last().locator('title').textContent()) ?? '', /: Succeeded \d+, Failed \d+, p50 \d+ ms, p95 \d+ ms$/);
      await hours.last().hover();
      await shot('chart');
      // The webhook's history, opened from its row: why it was turned off, and who turned it back on.
      await row('crm').getByRole('button', { name: 'Activity' }).click();
      await page.getByRole('heading', { name: 'Activity' }).waitFor();
      const activity = (kind: string) => page.getByTestId(`activity-${kind}`);
      await activity('deliveries_recovered').getByText(/^3 dropped deliveries since .+ sent again$/).waitFor();
      await activity('deliveries_recovered').getByText('a workspace admin (portal)').waitFor();
      await activity('activated').getByText('a workspace admin (portal)').waitFor();
      assert.match((await activity('disabled_by_breaker').textContent()) ?? '', /Turned off: \d+ failed attempts in 30 minutes; last error status 503 \(.+\)the failure breaker$/);
      await activity('created').getByText(/^API token /).waitFor();
      assert.equal(await page.getByRole('table').locator('tbody tr').count(), 4, 'created, turned off, activated, recovered');
      await shot('activity');
      await page.getByRole('tab', { name: 'Webhooks' }).click();
    });

    it('switches to German, health and retrying delivery included', async () => {
      await page.getByLabel('Language').selectOption('de');
      await page.getByRole('tab', { name: 'Zustellprotokoll' }).waitFor();
      await page.getByRole('button', { name: 'Webhook hinzufügen' }).waitFor();
      await page.getByText(/von 3 fehlgeschlagenen Versuchen in den letzten 30 Minuten/).waitFor();
      // The session's end with its date, in German order (day.month.year).
      assert.match((await page.getByText(/^Sitzung endet /).textContent()) ?? '', /^Sitzung endet \d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}$/);
      // Failing again (the activation forgot the earlier failures): u4 fails three times and waits for its fourth attempt.
      failing.respondWith((_req, res) => {
        res.statusCode = 503;
        res.end('maintenance');
      });
      await callUnary(system.ingest, system.ingest.publishEvent, { event: updated('u4') }, testToken);
      await row('crm').getByTestId('retrying').getByText(/^1 Zustellung wird wiederholt; nächster Versuch /).waitFor({ timeout: 15_000 });
      assert.match((await row('crm').getByTestId('last-failure').textContent()) ?? '', /^Letzter Fehler .+: status 503$/);
      assert.match((await row('crm').getByTestId('success-rate').textContent()) ?? '', /^\d+(,\d)? % von \d+ Versuchen erfolgreich$/);
      await shot('german');
      await page.getByRole('tab', { name: 'Zustellprotokoll' }).click();
      await page.getByTestId('delivery-u4').getByTestId('next-attempt').getByText(/^Nächster Versuch .+; verworfen, wenn es um .+ noch fehlschlägt$/).waitFor();
      await shot('german-retrying-delivery');
      // Its fourth attempt succeeds: nothing is left failing for the tests after this one.
      failing.respondWith((_req, res) => res.end('back'));
      // The history in German.
      await page.getByRole('tab', { name: 'Verlauf' }).click();
      await page.getByTestId('activity-disabled_by_breaker').getByText('die Fehlerschwelle').waitFor();
      await page.getByTestId('activity-activated').getByText(/^Aktiviert$/).waitFor();
      await shot('german-activity');
      await page.getByRole('tab', { name: 'Webhooks' }).click();
    });

    it('tells a workspace below ADVANCED why it cannot add webhooks', async () => {
      const starter = await browser.newPage({ locale: 'en-US' });
      try {
        await starter.goto((await session(starterWorkspace)).url.replace('http://127.0.0.1:8080', portal));
        await starter.getByText(/Your plan \(STARTER\) does not include webhooks/).waitFor();
        assert.equal(await starter.getByRole('button', { name: 'Add webhook' }).isDisabled(), true);
      } finally {
        await starter.close();
      }
    });
  });
});

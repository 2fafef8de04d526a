// The operator CLI as a user runs it: the built binary as a process against the running services.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HttpReceiver, startSystem, testToken, uniqueName, type RunningSystem } from '@webhooks/testing';

const cliPath = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'apps', 'cli', 'dist', 'main.js');

describe('operator CLI', () => {
  let system: RunningSystem;
  let receiver: HttpReceiver;
  const workspaceId = uniqueName('cli');

  before(async () => {
    receiver = await HttpReceiver.start();
    system = await startSystem();
  });

  after(async () => {
    await system?.stop();
    await receiver?.close();
  });

  function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const env = { PATH: process.env.PATH ?? '', WEBHOOKS_SUBSCRIPTION: system.services.get('subscription')![0]!.address(), WEBHOOKS_INGEST: system.services.get('event-ingest')![0]!.address(), WEBHOOKS_TOKEN: testToken };
    return new Promise((resolve) => {
      execFile(process.execPath, [cliPath, ...args], { env }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }));
    });
  }

  it('explains itself: an overview, --help on every command, exit code 2 for a wrong command line', async () => {
    const overview = await cli('--help');
    assert.equal(overview.code, 0);
    for (const command of ['workspace upsert', 'webhook create', 'webhook rotate-secret', 'event publish', 'deliveries list', 'deliveries retry', 'tail', 'activity list', 'activity watch']) assert.ok(overview.stdout.includes(command), command);
    const help = await cli('webhook', 'create', '--help');
    assert.match(help.stdout, /usage: webhooks webhook create <workspace-id> \[options\]/);
    assert.match(help.stdout, /--events TYPE/);
    assert.equal((await cli('webhook', 'explode')).code, 2);
    const missing = await cli('webhook', 'create', workspaceId, '--name', 'x');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing --url/);
  });

  it('creates a workspace and a webhook, publishes an event, and shows the delivery log', async () => {
    const upsert = await cli('workspace', 'upsert', workspaceId, '--name', 'CLI Co', '--plan', 'advanced', '--email', 'ops@cli.example');
    assert.equal(upsert.code, 0, upsert.stderr);
    assert.match(upsert.stdout, /plan\s+advanced/);

    const created = await cli('webhook', 'create', workspaceId, '--name', 'CRM', '--url', receiver.url, '--events', 'contact.created,message.incoming', '--header', 'x-api-key=k1', '--json');
    assert.equal(created.code, 0, created.stderr);
    const { webhook, signing_secret: secret } = JSON.parse(created.stdout) as { webhook: { id: string }; signing_secret: string };
    assert.match(secret, /^whsec_/);

    const listed = await cli('webhook', 'list', workspaceId);
    assert.match(listed.stdout, /^ID\s+NAME\s+STATUS\s+EVENTS\s+URL\s+VERSION$/m);
    assert.match(listed.stdout, new RegExp(`${webhook.id}\\s+CRM\\s+active\\s+contact.created,message.incoming`));

    const published = await cli('event', 'publish', workspaceId, '--id', 'cli_1', '--type', 'contact.created', '--data', '{"contact": {"id": "c_1", "first_name": "Ana"}}');
    assert.equal(published.code, 0, published.stderr);
    assert.ok(published.stdout.includes(webhook.id));
    const [request] = await receiver.waitForRequests(1);
    assert.deepEqual(JSON.parse(request!.body).data, { contact: { id: 'c_1', first_name: 'Ana' } });

    let deliveries = '';
    for (let i = 0; i < 50 && !/succeeded/.test(deliveries); i++) {
      deliveries = (await cli('deliveries', 'list', workspaceId)).stdout;
      if (!/succeeded/.test(deliveries)) await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(deliveries, /cli_1\s+contact.created\s+\S+\s+succeeded\s+1/);
    const deliveryId = /^(dl_\S+)/m.exec(deliveries)![1]!;
    const shown = await cli('deliveries', 'get', workspaceId, deliveryId);
    assert.match(shown.stdout, /^ATTEMPT\s+START\s+MS\s+STATUS\s+ERROR\s+RESPONSE$/m);
    assert.match(shown.stdout, /^1\s+\S+\s+\d+\s+200\s+ok$/m);
  });

  it('fails with exit code 1 and the server\'s message', async () => {
    const bad = await cli('webhook', 'create', workspaceId, '--name', 'bad', '--url', 'ftp://example.com', '--events', 'contact.created');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: INVALID_ARGUMENT: url: /);
    const denied = await cli('workspace', 'get', workspaceId, '--token', 'wrong-token-123');
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /error: UNAUTHENTICATED: the bearer token is not valid/);
  });

  it('lists and watches webhook activity, the watch continuing from a cursor', async () => {
    const listed = await cli('activity', 'list', workspaceId);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^TIME\s+WEBHOOK\s+WHAT\s+BY\s+DETAIL$/m);
    assert.match(listed.stdout, /\s+CRM\s+created\s+token test…/);
    const first = await cli('activity', 'watch', workspaceId, '--count', '1', '--json');
    assert.equal(first.code, 0, first.stderr);
    const { cursor, kind } = JSON.parse(first.stdout) as { cursor: string; kind: string };
    assert.equal(kind, 'ACTIVITY_KIND_CREATED');
    // From that cursor on: the next change only, as it happens.
    const watch = cli('activity', 'watch', workspaceId, '--cursor', cursor, '--count', '1');
    await new Promise((r) => setTimeout(r, 500));
    const webhookId = /^(wh_\S+)/m.exec((await cli('webhook', 'list', workspaceId)).stdout)![1]!;
    assert.equal((await cli('webhook', 'rotate-secret', workspaceId, webhookId)).code, 0);
    const { code, stdout } = await watch;
    assert.equal(code, 0);
    assert.match(stdout, /CRM\s+secret_rotated\s+by token test…\s+cursor \S+/);
    const refused = await cli('activity', 'watch', workspaceId, '--cursor', 'nope');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /error: INVALID_ARGUMENT: cursor: is not a cursor from an activity record/);
  });

  it('follows new attempts with tail', async () => {
    const tail = cli('tail', workspaceId, '--interval', '100', '--count', '1');
    await new Promise((r) => setTimeout(r, 500));
    await cli('event', 'publish', workspaceId, '--id', 'cli_tail', '--type', 'message.incoming', '--data', '{"message": {"id": "m_1", "text": "hi"}}');
    const { code, stdout } = await tail;
    assert.equal(code, 0);
    assert.match(stdout, /(pending|retrying|succeeded)\s+attempt \d\s+message.incoming\s+cli_tail/);
  });
});

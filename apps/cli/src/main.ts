#!/usr/bin/env node
// The operator CLI: workspaces, webhooks, events and the delivery log over the platform's gRPC API.
// Readable tables by default, --json for scripts; exit code 1 with the server's message when a call
// fails, 2 when the command line is wrong.
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { status as grpcStatus, WebhooksClient, type ServiceError, type WebhooksTlsOptions } from '@webhooks/client';
import {
  ActivateWebhookResponse, CreateWebhookResponse, EndpointAuthKind, type EndpointAuth, DeactivateWebhookResponse, DeliveryStatus, Event, GetDeliveryResponse, GetWebhookResponse,
  GetWorkspaceResponse, ListDeliveriesResponse, ListEventTypesResponse, ListWebhooksResponse, Plan, PublishEventResponse, RecoverDeliveriesResponse, RetryDeliveryResponse,
  RotateWebhookSecretResponse, SendTestEventResponse, UpdateWebhookResponse, UpsertWorkspaceResponse, Webhook, WebhookStatus,
  ActivityKind, ActorKind, ListWebhookActivityResponse, WebhookActivity,
  type Delivery,
} from '@webhooks/contracts';
import { details, enumName, table, time } from './format.js';

class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | string[] | undefined>;

interface Command {
  readonly name: string;
  readonly args: string;
  readonly summary: string;
  readonly options: Options;
  readonly optionHelp: readonly string[];
  run(client: WebhooksClient, positionals: string[], values: Values, json: boolean): Promise<void>;
}

const globalOptions: Options = {
  subscription: { type: 'string', default: process.env.WEBHOOKS_SUBSCRIPTION ?? '127.0.0.1:50051' },
  ingest: { type: 'string', default: process.env.WEBHOOKS_INGEST ?? '127.0.0.1:50052' },
  token: { type: 'string', default: process.env.WEBHOOKS_TOKEN ?? 'local-dev-token' },
  tls: { type: 'boolean', default: ['1', 'true', 'yes'].includes((process.env.WEBHOOKS_TLS ?? '').toLowerCase()) },
  ca: { type: 'string', default: process.env.WEBHOOKS_CA_FILE ?? '' },
  cert: { type: 'string', default: process.env.WEBHOOKS_CERT_FILE ?? '' },
  key: { type: 'string', default: process.env.WEBHOOKS_KEY_FILE ?? '' },
  'server-name': { type: 'string', default: process.env.WEBHOOKS_SERVER_NAME ?? '' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
};
const globalHelp = [
  '--subscription ADDR  subscription service host:port (env WEBHOOKS_SUBSCRIPTION, default 127.0.0.1:50051)',
  '--ingest ADDR        event-ingest host:port (env WEBHOOKS_INGEST, default 127.0.0.1:50052)',
  '--token TOKEN        bearer token (env WEBHOOKS_TOKEN, default local-dev-token)',
  '--tls                connect over TLS, trusting the system CAs (env WEBHOOKS_TLS=true; implied by --ca)',
  '--ca FILE            connect over TLS, trusting the CA in this PEM file (env WEBHOOKS_CA_FILE)',
  '--cert FILE, --key FILE  client certificate and key for mutual TLS (env WEBHOOKS_CERT_FILE, WEBHOOKS_KEY_FILE)',
  '--server-name NAME   name expected in the services\' certificates instead of the address\'s host (env WEBHOOKS_SERVER_NAME)',
  '--json               print the API response as JSON',
  '--help               help for the command',
];

const out = (text: string) => process.stdout.write(`${text}\n`);
const str = (v: Values[string]) => (typeof v === 'string' ? v : undefined);
const need = (v: string | undefined, what: string) => {
  if (!v) throw new UsageError(`missing ${what}`);
  return v;
};
const headersOf = (values: string[] | undefined) =>
  Object.fromEntries((values ?? []).map((h) => {
    const at = h.indexOf('=');
    if (at <= 0) throw new UsageError(`--header takes NAME=VALUE, got "${h}"`);
    return [h.slice(0, at), h.slice(at + 1)];
  }));

/** Endpoint options shared by webhook create and update: rate limit and endpoint authentication. */
const endpointOptions: Options = {
  'rate-limit': { type: 'string' },
  'basic-auth': { type: 'string' },
  'oauth-token-url': { type: 'string' },
  'oauth-client-id': { type: 'string' },
  'oauth-client-secret': { type: 'string' },
  'oauth-scope': { type: 'string' },
  'oauth-audience': { type: 'string' },
  'client-cert': { type: 'string' },
  'client-key': { type: 'string' },
  'endpoint-ca': { type: 'string' },
};
const endpointOptionHelp = [
  '--rate-limit N       at most N deliveries per second (1-1000; 0: no limit)',
  '--basic-auth USER:PASSWORD  HTTP Basic authentication to the endpoint',
  '--oauth-token-url URL --oauth-client-id ID --oauth-client-secret SECRET [--oauth-scope S] [--oauth-audience A]  OAuth 2.0 client credentials',
  '--client-cert FILE --client-key FILE  mutual TLS: client certificate and key (PEM) presented to the endpoint',
  '--endpoint-ca FILE   with --client-cert: the CA certificates (PEM) the endpoint\'s certificate must chain to, trusted for this webhook only',
];

function rateLimitOf(values: Values): number | undefined {
  const raw = str(values['rate-limit']);
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--rate-limit takes a whole number of deliveries per second, got "${raw}"`);
  return Number(raw);
}

/** The endpoint authentication the options describe; undefined when they name none. */
function authOf(values: Values): EndpointAuth | undefined {
  const basic = str(values['basic-auth']);
  const tokenUrl = str(values['oauth-token-url']);
  const cert = str(values['client-cert']);
  const given = [basic, tokenUrl, cert].filter((v) => v !== undefined).length;
  if (given > 1) throw new UsageError('choose one of --basic-auth, --oauth-token-url, --client-cert');
  if (basic !== undefined) {
    const at = basic.indexOf(':');
    if (at <= 0) throw new UsageError('--basic-auth takes USER:PASSWORD');
    return { method: { $case: 'basic', value: { username: basic.slice(0, at), password: basic.slice(at + 1) } } };
  }
  if (tokenUrl !== undefined) {
    return {
      method: {
        $case: 'oauthClientCredentials',
        value: {
          tokenUrl,
          clientId: need(str(values['oauth-client-id']), '--oauth-client-id'),
          clientSecret: need(str(values['oauth-client-secret']), '--oauth-client-secret'),
          scope: str(values['oauth-scope']) ?? '',
          audience: str(values['oauth-audience']) ?? '',
        },
      },
    };
  }
  if (cert !== undefined) {
    const read = (file: string, what: string) => {
      try {
        return readFileSync(file, 'utf8');
      } catch (error) {
        throw new UsageError(`cannot read ${what} ${file}: ${(error as Error).message}`);
      }
    };
    const ca = str(values['endpoint-ca']);
    return {
      method: {
        $case: 'mutualTls',
        value: { clientCertificatePem: read(cert, '--client-cert'), clientKeyPem: read(need(str(values['client-key']), '--client-key'), '--client-key'), caCertificatesPem: ca === undefined ? '' : read(ca, '--endpoint-ca') },
      },
    };
  }
  if (str(values['endpoint-ca']) !== undefined) throw new UsageError('--endpoint-ca goes with --client-cert and --client-key (mutual TLS)');
  return undefined;
}

function webhookRow(w: Webhook) {
  return { id: w.id, name: w.name, status: enumName(WebhookStatus[w.status] ?? '', 'WEBHOOK_STATUS_'), events: w.eventTypes.join(','), url: w.url, version: w.version };
}

function webhookDetails(w: Webhook, secret?: string) {
  return details({
    ...webhookRow(w),
    headers: Object.keys(w.headers).length > 0 ? w.headers : undefined,
    secret: secret ?? w.maskedSecret,
    'rate limit': w.rateLimit ? `${w.rateLimit}/s` : 'none',
    'endpoint auth': enumName(EndpointAuthKind[w.authKind] ?? '', 'ENDPOINT_AUTH_KIND_').replace('UNSPECIFIED', 'none'),
    disabled: w.disabled ? `${w.disabled.detail || enumName(String(w.disabled.reason), '')} since ${time(w.disabled.disableTime)}` : undefined,
    'last error': w.disabled?.lastError,
    created: time(w.createTime),
    updated: time(w.updateTime),
  });
}

function deliveryRow(d: Delivery) {
  return { id: d.id, created: time(d.createTime), event: d.eventId, type: d.eventType, webhook: d.webhookId, status: enumName(DeliveryStatus[d.status] ?? '', 'DELIVERY_STATUS_'), attempts: d.attemptCount, reason: d.dropReason };
}

const statusFilter: Record<string, DeliveryStatus> = {
  pending: DeliveryStatus.DELIVERY_STATUS_PENDING,
  retrying: DeliveryStatus.DELIVERY_STATUS_RETRYING,
  succeeded: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED,
  dropped: DeliveryStatus.DELIVERY_STATUS_DROPPED,
};

const webhookAction = (name: string, summary: string, call: (c: WebhooksClient, r: { workspaceId: string; webhookId: string }) => Promise<{ webhook?: Webhook }>, toJSON: (r: never) => unknown): Command => ({
  name: `webhook ${name}`,
  args: '<workspace-id> <webhook-id>',
  summary,
  options: {},
  optionHelp: [],
  async run(client, [workspaceId, webhookId], _values, json) {
    const response = await call(client, { workspaceId: need(workspaceId, '<workspace-id>'), webhookId: need(webhookId, '<webhook-id>') });
    out(json ? JSON.stringify(toJSON(response as never), null, 2) : webhookDetails(response.webhook!));
  },
});

const commands: Command[] = [
  {
    name: 'workspace upsert',
    args: '<workspace-id>',
    summary: 'create a workspace or change its name, plan and notification addresses',
    options: { name: { type: 'string' }, plan: { type: 'string' }, email: { type: 'string', multiple: true } },
    optionHelp: ['--name NAME', '--plan STARTER|GROWTH|ADVANCED|ENTERPRISE', '--email ADDRESS  (repeat for several)'],
    async run(client, [id], values, json) {
      const plan = Plan[`PLAN_${need(str(values.plan), '--plan').toUpperCase()}` as keyof typeof Plan];
      if (typeof plan !== 'number') throw new UsageError('--plan must be STARTER, GROWTH, ADVANCED or ENTERPRISE');
      const response = await client.upsertWorkspace({ workspace: { id: need(id, '<workspace-id>'), name: need(str(values.name), '--name'), plan, notificationEmails: (values.email as string[] | undefined) ?? [], createTime: undefined, updateTime: undefined } });
      const w = response.workspace!;
      out(json ? JSON.stringify(UpsertWorkspaceResponse.toJSON(response), null, 2) : details({ id: w.id, name: w.name, plan: enumName(Plan[w.plan] ?? '', 'PLAN_'), emails: w.notificationEmails, created: response.created ? 'yes' : 'no (updated)' }));
    },
  },
  {
    name: 'workspace get',
    args: '<workspace-id>',
    summary: 'show a workspace',
    options: {},
    optionHelp: [],
    async run(client, [id], _values, json) {
      const response = await client.getWorkspace({ workspaceId: need(id, '<workspace-id>') });
      const w = response.workspace!;
      out(json ? JSON.stringify(GetWorkspaceResponse.toJSON(response), null, 2) : details({ id: w.id, name: w.name, plan: enumName(Plan[w.plan] ?? '', 'PLAN_'), emails: w.notificationEmails, created: time(w.createTime), updated: time(w.updateTime) }));
    },
  },
  {
    name: 'webhook create',
    args: '<workspace-id>',
    summary: 'register an endpoint; prints its signing secret (shown only here)',
    options: { name: { type: 'string' }, url: { type: 'string' }, events: { type: 'string' }, header: { type: 'string', multiple: true }, ...endpointOptions },
    optionHelp: ['--name NAME', '--url URL', '--events TYPE[,TYPE...]', '--header NAME=VALUE  (repeat for several)', ...endpointOptionHelp],
    async run(client, [workspaceId], values, json) {
      const response = await client.createWebhook({
        workspaceId: need(workspaceId, '<workspace-id>'),
        name: need(str(values.name), '--name'),
        url: need(str(values.url), '--url'),
        eventTypes: need(str(values.events), '--events').split(',').map((e) => e.trim()),
        headers: headersOf(values.header as string[] | undefined),
        rateLimit: rateLimitOf(values) ?? 0,
        auth: authOf(values),
      });
      out(json ? JSON.stringify(CreateWebhookResponse.toJSON(response), null, 2) : webhookDetails(response.webhook!, response.signingSecret));
    },
  },
  {
    name: 'webhook list',
    args: '<workspace-id>',
    summary: "list a workspace's webhooks (every page)",
    options: { status: { type: 'string' } },
    optionHelp: ['--status active|disabled'],
    async run(client, [workspaceId], values, json) {
      const filter = str(values.status);
      if (filter && !['active', 'disabled'].includes(filter)) throw new UsageError('--status must be active or disabled');
      const webhooks: Webhook[] = [];
      let pageToken = '';
      do {
        const page = await client.listWebhooks({ workspaceId: need(workspaceId, '<workspace-id>'), pageSize: 100, pageToken, status: filter === 'active' ? WebhookStatus.WEBHOOK_STATUS_ACTIVE : filter === 'disabled' ? WebhookStatus.WEBHOOK_STATUS_DISABLED : 0 });
        webhooks.push(...page.webhooks);
        pageToken = page.nextPageToken;
      } while (pageToken);
      out(json ? JSON.stringify(ListWebhooksResponse.toJSON({ webhooks, nextPageToken: '' }), null, 2) : table(webhooks.map(webhookRow)));
    },
  },
  webhookAction('get', 'show a webhook', (c, r) => c.getWebhook(r), GetWebhookResponse.toJSON),
  webhookAction('activate', 'turn a disabled webhook back on', (c, r) => c.activateWebhook(r), ActivateWebhookResponse.toJSON),
  webhookAction('deactivate', 'switch a webhook off', (c, r) => c.deactivateWebhook(r), DeactivateWebhookResponse.toJSON),
  {
    name: 'webhook rotate-secret',
    args: '<workspace-id> <webhook-id>',
    summary: 'issue a new signing secret; the old one keeps signing for the grace period',
    options: {},
    optionHelp: [],
    async run(client, [workspaceId, webhookId], _values, json) {
      const response = await client.rotateWebhookSecret({ workspaceId: need(workspaceId, '<workspace-id>'), webhookId: need(webhookId, '<webhook-id>') });
      out(json ? JSON.stringify(RotateWebhookSecretResponse.toJSON(response), null, 2) : `${webhookDetails(response.webhook!, response.signingSecret)}\nprevious secret valid until  ${time(response.previousSecretExpireTime)}`);
    },
  },
  {
    name: 'webhook update',
    args: '<workspace-id> <webhook-id>',
    summary: 'change name, URL, event types, headers, rate limit or endpoint authentication (only the options given)',
    options: { name: { type: 'string' }, url: { type: 'string' }, events: { type: 'string' }, header: { type: 'string', multiple: true }, 'expected-version': { type: 'string' }, ...endpointOptions, 'no-auth': { type: 'boolean' } },
    optionHelp: ['--name NAME', '--url URL', '--events TYPE[,TYPE...]', '--header NAME=VALUE  (replaces all headers; repeat)', '--expected-version N  (refused if the webhook changed since)', ...endpointOptionHelp, '--no-auth            remove the endpoint authentication'],
    async run(client, [workspaceId, webhookId], values, json) {
      const mask: string[] = [];
      if (values.name !== undefined) mask.push('name');
      if (values.url !== undefined) mask.push('url');
      if (values.events !== undefined) mask.push('event_types');
      if (values.header !== undefined) mask.push('headers');
      const rateLimit = rateLimitOf(values);
      if (rateLimit !== undefined) mask.push('rate_limit');
      const auth = authOf(values);
      if (auth && values['no-auth']) throw new UsageError('--no-auth removes the endpoint authentication; do not give credentials with it');
      if (auth || values['no-auth']) mask.push('auth');
      if (mask.length === 0) throw new UsageError('give at least one of --name, --url, --events, --header, --rate-limit, --basic-auth, --oauth-token-url, --client-cert, --no-auth');
      const response = await client.updateWebhook({
        workspaceId: need(workspaceId, '<workspace-id>'),
        webhook: Webhook.fromPartial({ id: need(webhookId, '<webhook-id>'), name: str(values.name) ?? '', url: str(values.url) ?? '', eventTypes: str(values.events)?.split(',').map((e) => e.trim()) ?? [], headers: headersOf(values.header as string[] | undefined), rateLimit: rateLimit ?? 0, auth }),
        updateMask: mask,
        expectedVersion: Number(str(values['expected-version']) ?? 0),
      });
      out(json ? JSON.stringify(UpdateWebhookResponse.toJSON(response), null, 2) : webhookDetails(response.webhook!));
    },
  },
  {
    name: 'webhook delete',
    args: '<workspace-id> <webhook-id>',
    summary: 'remove a webhook and its secrets',
    options: {},
    optionHelp: [],
    async run(client, [workspaceId, webhookId], _values, json) {
      await client.deleteWebhook({ workspaceId: need(workspaceId, '<workspace-id>'), webhookId: need(webhookId, '<webhook-id>') });
      out(json ? JSON.stringify({ deleted: webhookId }) : `deleted ${webhookId}`);
    },
  },
  {
    name: 'event publish',
    args: '<workspace-id>',
    summary: 'publish an event; --data/--file hold its payload in snake_case JSON',
    options: { id: { type: 'string' }, type: { type: 'string' }, data: { type: 'string' }, file: { type: 'string' } },
    optionHelp: ['--id EVENT_ID  (the idempotency key)', '--type TYPE  (e.g. contact.created)', "--data JSON  e.g. '{\"contact\": {\"id\": \"c_1\", \"first_name\": \"Ana\"}}'", '--file FILE  the same JSON from a file'],
    async run(client, [workspaceId], values, json) {
      const type = need(str(values.type), '--type');
      const raw = str(values.file) ? readFileSync(str(values.file)!, 'utf8') : need(str(values.data), '--data or --file');
      let payload: unknown;
      try {
        payload = JSON.parse(raw);
      } catch {
        throw new UsageError('the event payload is not valid JSON');
      }
      const event = Event.fromJSON({ id: need(str(values.id), '--id'), workspace_id: need(workspaceId, '<workspace-id>'), type, [type.replaceAll('.', '_')]: payload });
      const response = await client.publishEvent({ event });
      const r = response.result!;
      out(json ? JSON.stringify(PublishEventResponse.toJSON(response), null, 2) : details({ event: r.eventId, 'queued for': r.webhookIds.length > 0 ? r.webhookIds : '(no subscribed active webhook)', duplicate: r.duplicate ? 'yes: already accepted before, nothing new sent' : 'no' }));
    },
  },
  {
    name: 'event-types',
    args: '',
    summary: 'the event types a webhook can subscribe to',
    options: {},
    optionHelp: [],
    async run(client, _positionals, _values, json) {
      const response = await client.listEventTypes();
      out(json ? JSON.stringify(ListEventTypesResponse.toJSON(response), null, 2) : table(response.eventTypes.map((t) => ({ type: t.name, description: t.description }))));
    },
  },
  {
    name: 'deliveries list',
    args: '<workspace-id>',
    summary: 'the delivery log, newest first',
    options: { webhook: { type: 'string' }, type: { type: 'string' }, status: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, limit: { type: 'string' }, 'page-token': { type: 'string' } },
    optionHelp: ['--webhook WEBHOOK_ID', '--type EVENT_TYPE', '--status pending|retrying|succeeded|dropped', '--since TIME, --until TIME  (ISO 8601)', '--limit N  (page size, default 50)', '--page-token TOKEN  (from a previous --json answer)'],
    async run(client, [workspaceId], values, json) {
      const statusName = str(values.status);
      if (statusName && !(statusName in statusFilter)) throw new UsageError('--status must be pending, retrying, succeeded or dropped');
      const date = (v: string | undefined, flag: string) => {
        if (!v) return undefined;
        const d = new Date(v);
        if (Number.isNaN(d.getTime())) throw new UsageError(`${flag} is not a time (use ISO 8601, e.g. 2026-11-24T10:00:00Z)`);
        return d;
      };
      const response = await client.listDeliveries({
        workspaceId: need(workspaceId, '<workspace-id>'), webhookId: str(values.webhook) ?? '', eventType: str(values.type) ?? '', status: statusName ? statusFilter[statusName]! : 0,
        startTime: date(str(values.since), '--since'), endTime: date(str(values.until), '--until'), pageSize: Number(str(values.limit) ?? 0), pageToken: str(values['page-token']) ?? '',
      });
      out(json ? JSON.stringify(ListDeliveriesResponse.toJSON(response), null, 2) : table(response.deliveries.map(deliveryRow)) + (response.nextPageToken ? `\nmore: --page-token ${response.nextPageToken}` : ''));
    },
  },
  {
    name: 'deliveries get',
    args: '<workspace-id> <delivery-id>',
    summary: 'one delivery with every attempt',
    options: {},
    optionHelp: [],
    async run(client, [workspaceId, deliveryId], _values, json) {
      const response = await client.getDelivery({ workspaceId: need(workspaceId, '<workspace-id>'), deliveryId: need(deliveryId, '<delivery-id>') });
      const d = response.delivery!;
      out(json ? JSON.stringify(GetDeliveryResponse.toJSON(response), null, 2) : `${details({ ...deliveryRow(d), 'retry of': d.retryOfDeliveryId })}\n\n${table(d.attempts.map((a) => ({ attempt: a.number, start: time(a.startTime), ms: a.durationMs, status: a.statusCode || '', error: a.failureReason, response: a.responseExcerpt.slice(0, 60).replace(/\s+/g, ' ') })))}`);
    },
  },
  {
    name: 'deliveries retry',
    args: '<workspace-id> <delivery-id>',
    summary: 'send a dropped delivery again (a new delivery, behind queued events)',
    options: {},
    optionHelp: [],
    async run(client, [workspaceId, deliveryId], _values, json) {
      const response = await client.retryDelivery({ workspaceId: need(workspaceId, '<workspace-id>'), deliveryId: need(deliveryId, '<delivery-id>') });
      out(json ? JSON.stringify(RetryDeliveryResponse.toJSON(response), null, 2) : details({ ...deliveryRow(response.delivery!), 'retry of': response.delivery!.retryOfDeliveryId }));
    },
  },
  {
    name: 'recover',
    args: '<workspace-id> <webhook-id>',
    summary: 'send again every dropped delivery of a webhook since a time, in order, behind its queue',
    options: { since: { type: 'string' } },
    optionHelp: ['--since TIME  (ISO 8601, e.g. 2026-11-24T10:00:00Z, or a duration back from now: 90m, 24h, 7d)'],
    async run(client, [workspaceId, webhookId], values, json) {
      const raw = need(str(values.since), '--since');
      const back = /^(\d+)(m|h|d)$/.exec(raw);
      const since = back ? new Date(Date.now() - Number(back[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[back[2] as 'm' | 'h' | 'd']) : new Date(raw);
      if (Number.isNaN(since.getTime())) throw new UsageError('--since is not a time (use ISO 8601, e.g. 2026-11-24T10:00:00Z, or 90m, 24h, 7d)');
      const response = await client.recoverDeliveries({ workspaceId: need(workspaceId, '<workspace-id>'), webhookId: need(webhookId, '<webhook-id>'), since });
      out(json ? JSON.stringify(RecoverDeliveriesResponse.toJSON(response), null, 2) : `queued ${response.queuedCount} dropped deliveries again since ${time(since)}${response.deliveries.length > 0 ? `\n\n${table(response.deliveries.map((d) => ({ ...deliveryRow(d), 'retry of': d.retryOfDeliveryId })))}` : ''}`);
    },
  },
  {
    name: 'test-event',
    args: '<workspace-id> <webhook-id>',
    summary: 'send a sample event of a type to one webhook',
    options: { type: { type: 'string' } },
    optionHelp: ['--type EVENT_TYPE'],
    async run(client, [workspaceId, webhookId], values, json) {
      const response = await client.sendTestEvent({ workspaceId: need(workspaceId, '<workspace-id>'), webhookId: need(webhookId, '<webhook-id>'), eventType: need(str(values.type), '--type') });
      out(json ? JSON.stringify(SendTestEventResponse.toJSON(response), null, 2) : details(deliveryRow(response.delivery!)));
    },
  },
  {
    name: 'tail',
    args: '<workspace-id>',
    summary: 'follow deliveries as their attempts happen (Ctrl-C stops)',
    options: { webhook: { type: 'string' }, interval: { type: 'string' }, count: { type: 'string' } },
    optionHelp: ['--webhook WEBHOOK_ID', '--interval MS  (how often to look, default 1000)', '--count N  (stop after N lines)'],
    async run(client, [workspaceId], values, json) {
      const interval = Number(str(values.interval) ?? 1000);
      const stopAfter = Number(str(values.count) ?? Infinity);
      const seen = new Map<string, string>();
      let printed = 0;
      let first = true;
      for (;;) {
        const { deliveries } = await client.listDeliveries({ workspaceId: need(workspaceId, '<workspace-id>'), webhookId: str(values.webhook) ?? '', eventType: '', status: 0, startTime: undefined, endTime: undefined, pageSize: 100, pageToken: '' });
        for (const d of [...deliveries].reverse()) {
          const state = `${d.status}/${d.attemptCount}`;
          if (seen.get(d.id) === state) continue;
          seen.set(d.id, state);
          // The first look only remembers what is there; from then on every change is a line.
          if (first) continue;
          const row = deliveryRow(d);
          out(json ? JSON.stringify(row) : `${time(d.updateTime)}  ${row.status.padEnd(9)}  attempt ${row.attempts}  ${row.type.padEnd(24)}  ${row.event}  -> ${row.webhook}${row.reason ? `  (${row.reason})` : ''}`);
          if (++printed >= stopAfter) return;
        }
        first = false;
        await new Promise((resolve) => setTimeout(resolve, interval));
      }
    },
  },
  {
    name: 'activity list',
    args: '<workspace-id>',
    summary: 'the history of a workspace\'s webhooks, newest first: what changed, who changed it',
    options: { webhook: { type: 'string' }, 'page-token': { type: 'string' } },
    optionHelp: ['--webhook WEBHOOK_ID  (one webhook\'s records, a deleted one\'s too)', '--page-token TOKEN  (the next page, from a previous answer)'],
    async run(client, [workspaceId], values, json) {
      const response = await client.listWebhookActivity({ workspaceId: need(workspaceId, '<workspace-id>'), webhookId: str(values.webhook) ?? '', startTime: undefined, endTime: undefined, pageSize: 50, pageToken: str(values['page-token']) ?? '' });
      if (json) {
        out(JSON.stringify(ListWebhookActivityResponse.toJSON(response), null, 2));
        return;
      }
      out(table(response.activity.map(activityRow)));
      if (response.nextPageToken) out(`\nmore: --page-token ${response.nextPageToken}`);
    },
  },
  {
    name: 'activity watch',
    args: '[<workspace-id>]',
    summary: 'follow webhook activity as it happens (every workspace without one); resumes by itself after a disconnect (Ctrl-C stops)',
    options: { cursor: { type: 'string' }, count: { type: 'string' } },
    optionHelp: ['--cursor CURSOR  (continue after this record; default: from the oldest record kept)', '--count N  (stop after N records)'],
    async run(client, [workspaceId], values, json) {
      const stopAfter = Number(str(values.count) ?? Infinity);
      let printed = 0;
      for await (const record of client.watchActivity({ workspaceId: workspaceId ?? '', cursor: str(values.cursor) ?? '' })) {
        const row = activityRow(record);
        out(json ? JSON.stringify(WebhookActivity.toJSON(record)) : `${row.time}  ${row.webhook.padEnd(20)}  ${row.what}  by ${row.by}${row.detail ? `  (${row.detail})` : ''}  cursor ${record.cursor}`);
        if (++printed >= stopAfter) return;
      }
    },
  },
];

/** A record as a line of the activity table. */
function activityRow(record: WebhookActivity) {
  const actor = record.actor;
  const by = !actor ? '' : actor.kind === ActorKind.ACTOR_KIND_PORTAL_SESSION ? 'portal session' : actor.kind === ActorKind.ACTOR_KIND_OPERATOR ? `operator ${actor.name}` : actor.kind === ActorKind.ACTOR_KIND_SYSTEM ? actor.name : `token ${actor.name}`;
  const detail =
    record.kind === ActivityKind.ACTIVITY_KIND_EDITED ? record.fields.join(', ')
    : record.kind === ActivityKind.ACTIVITY_KIND_DISABLED_BY_BREAKER ? `${record.failureCount} failed attempts in ${Math.round((record.window?.seconds ?? 0) / 60)} min; ${record.lastError}`
    : record.kind === ActivityKind.ACTIVITY_KIND_DISABLED_BY_PLAN ? `plan ${enumName(Plan[record.plan], 'PLAN_')}`
    : record.kind === ActivityKind.ACTIVITY_KIND_DELIVERIES_RECOVERED ? `${record.recoveredCount} since ${time(record.recoveredSince)}`
    : record.kind === ActivityKind.ACTIVITY_KIND_AUTH_CHANGED ? enumName(EndpointAuthKind[record.authKind], 'ENDPOINT_AUTH_KIND_').replace('unspecified', 'removed')
    : '';
  return { time: time(record.time), webhook: record.webhookName, what: enumName(ActivityKind[record.kind], 'ACTIVITY_KIND_'), by, detail };
}

/** TLS from --tls/--ca/--cert/--key/--server-name (or their WEBHOOKS_* variables); undefined: plaintext. */
function tlsOptions(values: Values): WebhooksTlsOptions | undefined {
  const [ca, cert, key, serverName] = [str(values.ca), str(values.cert), str(values.key), str(values['server-name'])];
  if (!values.tls && !ca && !cert && !key) return undefined;
  if (!cert !== !key) throw new UsageError('--cert and --key go together (a client certificate and its private key)');
  const read = (file: string | undefined, flag: string) => {
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (error) {
      throw new UsageError(`${flag}: cannot read "${file}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  return { ca: read(ca, '--ca'), cert: read(cert, '--cert'), key: read(key, '--key'), serverName: serverName || undefined };
}

function commandHelp(command: Command): string {
  return [`usage: webhooks ${command.name} ${command.args} [options]`, '', command.summary, '', 'options:', ...command.optionHelp.map((h) => `  ${h}`), ...globalHelp.map((h) => `  ${h}`)].join('\n');
}

const overview = [
  'usage: webhooks <command> [arguments] [options]',
  '',
  'commands:',
  ...commands.map((c) => `  ${`${c.name} ${c.args}`.padEnd(52)} ${c.summary}`),
  '',
  'webhooks <command> --help shows the options of one command.',
].join('\n');

async function main(argv: string[]): Promise<number> {
  const words = argv.filter((a) => !a.startsWith('-'));
  const command = commands.find((c) => {
    const parts = c.name.split(' ');
    return parts.every((p, i) => words[i] === p);
  });
  if (!command) {
    if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
      out(overview);
      return 0;
    }
    throw new UsageError(`unknown command "${words.slice(0, 2).join(' ')}"`);
  }
  const parsed = parseArgs({ args: argv, options: { ...globalOptions, ...command.options }, allowPositionals: true, strict: true });
  if (parsed.values.help) {
    out(commandHelp(command));
    return 0;
  }
  const positionals = parsed.positionals.slice(command.name.split(' ').length);
  const client = new WebhooksClient({ subscriptionAddress: parsed.values.subscription as string, ingestAddress: parsed.values.ingest as string, token: parsed.values.token as string, tls: tlsOptions(parsed.values as Values) });
  try {
    await command.run(client, positionals, parsed.values as Values, parsed.values.json as boolean);
  } finally {
    client.close();
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith?.('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(error as Error).message}\n\n${overview}\n`);
      process.exit(2);
    }
    const serviceError = error as Partial<ServiceError>;
    if (typeof serviceError.code === 'number') {
      process.stderr.write(`error: ${grpcStatus[serviceError.code]}: ${serviceError.details}\n`);
      process.exit(1);
    }
    process.stderr.write(`error: ${String(error)}\n`);
    process.exit(1);
  },
);

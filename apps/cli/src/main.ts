#!/usr/bin/env node
// A small command-line client for trying the platform: workspaces, webhooks and events over gRPC.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { credentials, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import {
  CreateWebhookResponse,
  Event,
  GetWebhookResponse,
  GetWorkspaceResponse,
  IngestServiceClient,
  ListEventTypesResponse,
  ListWebhooksResponse,
  Plan,
  PublishEventResponse,
  RotateWebhookSecretResponse,
  SubscriptionServiceClient,
  UpsertWorkspaceResponse,
  ActivateWebhookResponse,
  DeactivateWebhookResponse,
} from '@webhooks/contracts';

const usage = `usage: webhooks <command> [arguments] [options]

commands:
  workspace upsert <workspace-id> --name NAME --plan STARTER|GROWTH|ADVANCED|ENTERPRISE [--email ADDRESS]...
  workspace get <workspace-id>
  webhook create <workspace-id> --name NAME --url URL --events TYPE[,TYPE...] [--header NAME=VALUE]...
  webhook list <workspace-id>
  webhook get|activate|deactivate|delete|rotate-secret <workspace-id> <webhook-id>
  event publish <workspace-id> --id EVENT_ID --type TYPE (--data JSON | --file FILE)
  event-types

options:
  --subscription ADDRESS  subscription service (env WEBHOOKS_SUBSCRIPTION, default 127.0.0.1:50051)
  --ingest ADDRESS        event-ingest service (env WEBHOOKS_INGEST, default 127.0.0.1:50052)
  --token TOKEN           bearer token (env WEBHOOKS_TOKEN, default local-dev-token)
  --help                  this text

--data and --file take the payload of the event type in snake_case JSON, e.g. for contact.created:
  '{"contact": {"id": "c_1", "first_name": "Ana", "email": "ana@example.com"}}'`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    name: { type: 'string' },
    plan: { type: 'string' },
    email: { type: 'string', multiple: true },
    url: { type: 'string' },
    events: { type: 'string' },
    header: { type: 'string', multiple: true },
    id: { type: 'string' },
    type: { type: 'string' },
    data: { type: 'string' },
    file: { type: 'string' },
    subscription: { type: 'string', default: process.env.WEBHOOKS_SUBSCRIPTION ?? '127.0.0.1:50051' },
    ingest: { type: 'string', default: process.env.WEBHOOKS_INGEST ?? '127.0.0.1:50052' },
    token: { type: 'string', default: process.env.WEBHOOKS_TOKEN ?? 'local-dev-token' },
    help: { type: 'boolean', default: false },
  },
});

class UsageError extends Error {}

function need(value: string | undefined, what: string): string {
  if (!value) throw new UsageError(`missing ${what}`);
  return value;
}

function call<Res>(client: Client, method: string, request: unknown): Promise<Res> {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${values.token}`);
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (...args: unknown[]) => void>)[method]!;
    fn.call(client, request, metadata, { deadline: new Date(Date.now() + 15_000) }, (error: ServiceError | null, response: Res) => (error ? reject(error) : resolve(response)));
  });
}

function print(json: unknown): void {
  console.log(JSON.stringify(json, null, 2));
}

function payloadCase(type: string): string {
  // "contact.assignee.updated" -> "contact_assignee_updated": the snake_case name of the oneof field.
  return type.replaceAll('.', '_');
}

async function run(): Promise<void> {
  const [command, sub, first, second] = positionals;
  if (values.help || !command) {
    console.log(usage);
    return;
  }
  const subscription = new SubscriptionServiceClient(values.subscription, credentials.createInsecure());
  const ingest = new IngestServiceClient(values.ingest, credentials.createInsecure());
  try {
    if (command === 'workspace' && sub === 'upsert') {
      const plan = Plan[`PLAN_${need(values.plan, '--plan').toUpperCase()}` as keyof typeof Plan];
      if (plan === undefined) throw new UsageError('--plan must be STARTER, GROWTH, ADVANCED or ENTERPRISE');
      const response = await call<UpsertWorkspaceResponse>(subscription, 'upsertWorkspace', {
        workspace: { id: need(first, '<workspace-id>'), name: need(values.name, '--name'), plan, notificationEmails: values.email ?? [] },
      });
      print(UpsertWorkspaceResponse.toJSON(response));
    } else if (command === 'workspace' && sub === 'get') {
      print(GetWorkspaceResponse.toJSON(await call(subscription, 'getWorkspace', { workspaceId: need(first, '<workspace-id>') })));
    } else if (command === 'webhook' && sub === 'create') {
      const headers = Object.fromEntries((values.header ?? []).map((h) => [h.slice(0, h.indexOf('=')), h.slice(h.indexOf('=') + 1)]));
      const response = await call<CreateWebhookResponse>(subscription, 'createWebhook', {
        workspaceId: need(first, '<workspace-id>'),
        name: need(values.name, '--name'),
        url: need(values.url, '--url'),
        eventTypes: need(values.events, '--events').split(',').map((e) => e.trim()),
        headers,
      });
      print(CreateWebhookResponse.toJSON(response));
    } else if (command === 'webhook' && sub === 'list') {
      print(ListWebhooksResponse.toJSON(await call(subscription, 'listWebhooks', { workspaceId: need(first, '<workspace-id>'), pageSize: 100, pageToken: '', status: 0 })));
    } else if (command === 'webhook' && sub && ['get', 'activate', 'deactivate', 'delete', 'rotate-secret'].includes(sub)) {
      const request = { workspaceId: need(first, '<workspace-id>'), webhookId: need(second, '<webhook-id>') };
      if (sub === 'get') print(GetWebhookResponse.toJSON(await call(subscription, 'getWebhook', request)));
      if (sub === 'activate') print(ActivateWebhookResponse.toJSON(await call(subscription, 'activateWebhook', request)));
      if (sub === 'deactivate') print(DeactivateWebhookResponse.toJSON(await call(subscription, 'deactivateWebhook', request)));
      if (sub === 'rotate-secret') print(RotateWebhookSecretResponse.toJSON(await call(subscription, 'rotateWebhookSecret', request)));
      if (sub === 'delete') {
        await call(subscription, 'deleteWebhook', request);
        print({ deleted: request.webhookId });
      }
    } else if (command === 'event' && sub === 'publish') {
      const type = need(values.type, '--type');
      const raw = values.file ? readFileSync(values.file, 'utf8') : need(values.data, '--data or --file');
      const event = Event.fromJSON({ id: need(values.id, '--id'), workspace_id: need(first, '<workspace-id>'), type, [payloadCase(type)]: JSON.parse(raw) });
      print(PublishEventResponse.toJSON(await call(ingest, 'publishEvent', { event })));
    } else if (command === 'event-types') {
      print(ListEventTypesResponse.toJSON(await call(subscription, 'listEventTypes', {})));
    } else {
      throw new UsageError(`unknown command "${positionals.join(' ')}"`);
    }
  } finally {
    subscription.close();
    ingest.close();
  }
}

run().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`${error.message}\n\n${usage}`);
    process.exit(2);
  }
  const serviceError = error as Partial<ServiceError>;
  console.error(serviceError.details ? `error (${serviceError.code}): ${serviceError.details}` : String(error));
  process.exit(1);
});

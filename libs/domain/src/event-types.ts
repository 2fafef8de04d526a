// The nine event types of the messaging product, and how an Event becomes the JSON body an endpoint gets.
import {
  CommentCreated,
  ContactAssigneeUpdated,
  ContactCreated,
  ContactTagUpdated,
  ContactUpdated,
  ConversationClosed,
  ConversationOpened,
  MessageIncoming,
  MessageOutgoing,
  payloadJsonSchema,
  type Event,
} from '@webhooks/contracts';
import { invalidArgument } from './errors.js';
import { checkEventId, checkWorkspaceId } from './ids.js';

type PayloadCase = NonNullable<Event['data']>['$case'];

interface EventTypeDefinition {
  readonly name: string;
  readonly payload: PayloadCase;
  /** The payload's message in webhooks/v1/events.proto. */
  readonly message: string;
  readonly description: string;
  readonly toJSON: (value: never) => unknown;
}

const definitions = [
  { name: 'conversation.opened', payload: 'conversationOpened', message: 'ConversationOpened', toJSON: ConversationOpened.toJSON, description: 'A conversation with a contact was opened, by the contact writing in or by the team.' },
  { name: 'conversation.closed', payload: 'conversationClosed', message: 'ConversationClosed', toJSON: ConversationClosed.toJSON, description: 'A conversation was closed; carries who closed it, its category and summary.' },
  { name: 'contact.created', payload: 'contactCreated', message: 'ContactCreated', toJSON: ContactCreated.toJSON, description: 'A new contact was added to the workspace.' },
  { name: 'contact.updated', payload: 'contactUpdated', message: 'ContactUpdated', toJSON: ContactUpdated.toJSON, description: "A contact's details changed; carries the contact and the names of the changed fields." },
  { name: 'contact.assignee.updated', payload: 'contactAssigneeUpdated', message: 'ContactAssigneeUpdated', toJSON: ContactAssigneeUpdated.toJSON, description: 'A contact was assigned to someone else, or unassigned.' },
  { name: 'contact.tag.updated', payload: 'contactTagUpdated', message: 'ContactTagUpdated', toJSON: ContactTagUpdated.toJSON, description: "Tags were added to or removed from a contact." },
  { name: 'message.incoming', payload: 'messageIncoming', message: 'MessageIncoming', toJSON: MessageIncoming.toJSON, description: 'A contact sent a message on one of the channels.' },
  { name: 'message.outgoing', payload: 'messageOutgoing', message: 'MessageOutgoing', toJSON: MessageOutgoing.toJSON, description: 'A message was sent to a contact, by a team member, a bot, a workflow or the API.' },
  { name: 'comment.created', payload: 'commentCreated', message: 'CommentCreated', toJSON: CommentCreated.toJSON, description: 'A team member left an internal comment on a contact or conversation.' },
] as const satisfies readonly EventTypeDefinition[];

export type EventTypeName = (typeof definitions)[number]['name'];

export const eventTypes: readonly { readonly name: EventTypeName; readonly description: string }[] = definitions.map(({ name, description }) => ({ name, description }));

const byName = new Map<string, (typeof definitions)[number]>(definitions.map((d) => [d.name, d]));
const byPayload = new Map<string, (typeof definitions)[number]>(definitions.map((d) => [d.payload, d]));
const knownNames = definitions.map((d) => d.name).join(', ');

export function isEventType(name: string): name is EventTypeName {
  return byName.has(name);
}

/** Checks a list of event type names a webhook subscribes to: non-empty, known, no repeats. */
export function checkEventTypes(names: readonly string[], field = 'event_types'): EventTypeName[] {
  if (names.length === 0) throw invalidArgument(field, `choose at least one of ${knownNames}`);
  const seen = new Set<string>();
  for (const name of names) {
    if (!isEventType(name)) throw invalidArgument(field, `unknown event type "${name.slice(0, 80)}"; known types are ${knownNames}`);
    if (seen.has(name)) throw invalidArgument(field, `"${name}" is listed twice`);
    seen.add(name);
  }
  return [...seen] as EventTypeName[];
}

/** An event that passed validation, with the exact body every subscribed endpoint will receive. */
export interface AcceptedEvent {
  readonly id: string;
  readonly workspaceId: string;
  readonly type: EventTypeName;
  readonly occurredAt: Date;
  readonly body: Buffer;
}

/**
 * Validates an event from the core product and renders its delivered body
 * `{"id","type","timestamp","workspace_id","data"}` (data with snake_case keys). Throws an
 * invalid-argument DomainError naming the field (prefixed with `field`) on the first problem.
 */
export function acceptEvent(event: Event | undefined, now: Date, maxBodyBytes: number, field = 'event'): AcceptedEvent {
  if (!event) throw invalidArgument(field, 'is required');
  const id = checkEventId(event.id, `${field}.id`);
  const workspaceId = checkWorkspaceId(event.workspaceId, `${field}.workspace_id`);
  if (!event.data) throw invalidArgument(`${field}.data`, `set the payload that matches the event type (one of ${definitions.map((d) => d.payload).join(', ')})`);
  const definition = byPayload.get(event.data.$case)!;
  if (event.type !== '' && event.type !== definition.name) {
    if (!isEventType(event.type)) throw invalidArgument(`${field}.type`, `unknown event type "${event.type.slice(0, 80)}"; known types are ${knownNames}`);
    throw invalidArgument(`${field}.type`, `is "${event.type}" but the payload set is ${definition.payload} (type "${definition.name}")`);
  }
  const occurredAt = event.occurredAt ?? now;
  if (Number.isNaN(occurredAt.getTime())) throw invalidArgument(`${field}.occurred_at`, 'is not a valid time');
  const body = Buffer.from(
    JSON.stringify({
      id,
      type: definition.name,
      timestamp: occurredAt.toISOString(),
      workspace_id: workspaceId,
      data: definition.toJSON(event.data.value as never),
    }),
  );
  if (body.length > maxBodyBytes) {
    throw invalidArgument(field, `the delivered body would be ${body.length} bytes, above the limit of ${maxBodyBytes} bytes; send less data in the payload`);
  }
  return { id, workspaceId, type: definition.name, occurredAt, body };
}

/** The catalog entry of a type: what it means, the JSON Schema of its "data", and an example body. */
export interface EventTypeDescription {
  readonly name: EventTypeName;
  readonly description: string;
  readonly dataSchema: Record<string, unknown>;
  readonly exampleBody: string;
}

/** The whole catalog; examples are rendered by acceptEvent, exactly as endpoints receive them. */
export function describeEventTypes(example: (type: EventTypeName) => Event): EventTypeDescription[] {
  return definitions.map((d) => ({
    name: d.name,
    description: d.description,
    dataSchema: payloadJsonSchema(d.message),
    exampleBody: acceptEvent(example(d.name), new Date(0), Number.MAX_SAFE_INTEGER).body.toString('utf8'),
  }));
}

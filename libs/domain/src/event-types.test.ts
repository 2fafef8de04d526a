import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Event } from '@webhooks/contracts';
import { DomainError } from './errors.js';
import { acceptEvent, checkEventTypes, eventTypes } from './event-types.js';

const now = new Date('2026-11-24T10:00:00.000Z');

function contactCreated(overrides: Partial<Event> = {}): Event {
  return {
    id: 'evt_1',
    workspaceId: 'ws_1',
    type: 'contact.created',
    occurredAt: new Date('2026-11-24T09:59:59.000Z'),
    data: { $case: 'contactCreated', value: { contact: { id: 'c_1', firstName: 'Ana', lastName: 'Lima', email: 'ana@example.com', phone: '', language: 'pt', countryCode: 'BR', profilePicUrl: '', assignee: undefined, tags: ['vip'], customFields: { plan: 'gold' }, createdAt: undefined, updatedAt: undefined } } },
    ...overrides,
  };
}

function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DomainError);
    assert.equal(error.kind, 'invalid-argument');
    return error.message;
  }
  assert.fail('expected an invalid-argument error');
}

describe('event types', () => {
  it('are the nine of the product', () => {
    assert.deepEqual(eventTypes.map((t) => t.name).sort(), [
      'comment.created', 'contact.assignee.updated', 'contact.created', 'contact.tag.updated', 'contact.updated',
      'conversation.closed', 'conversation.opened', 'message.incoming', 'message.outgoing',
    ]);
  });

  it('checks subscription lists', () => {
    assert.deepEqual(checkEventTypes(['contact.created', 'message.incoming']), ['contact.created', 'message.incoming']);
    assert.match(rejection(() => checkEventTypes([])), /event_types: choose at least one/);
    assert.match(rejection(() => checkEventTypes(['contact.deleted'])), /unknown event type "contact.deleted"; known types are/);
    assert.match(rejection(() => checkEventTypes(['contact.created', 'contact.created'])), /listed twice/);
  });
});

describe('acceptEvent', () => {
  it('renders the delivered body with snake_case data', () => {
    const accepted = acceptEvent(contactCreated(), now, 262_144);
    assert.equal(accepted.type, 'contact.created');
    assert.deepEqual(JSON.parse(accepted.body.toString()), {
      id: 'evt_1',
      type: 'contact.created',
      timestamp: '2026-11-24T09:59:59.000Z',
      workspace_id: 'ws_1',
      data: { contact: { id: 'c_1', first_name: 'Ana', last_name: 'Lima', email: 'ana@example.com', language: 'pt', country_code: 'BR', tags: ['vip'], custom_fields: { plan: 'gold' } } },
    });
  });

  it('takes the type from the payload when it is left empty, and the time from now', () => {
    const accepted = acceptEvent(contactCreated({ type: '', occurredAt: undefined }), now, 262_144);
    assert.equal(accepted.type, 'contact.created');
    assert.equal(accepted.occurredAt, now);
  });

  it('names the field and what to fix for each kind of bad input', () => {
    assert.match(rejection(() => acceptEvent(undefined, now, 1000)), /^event: is required/);
    assert.match(rejection(() => acceptEvent(contactCreated({ id: '' }), now, 1000)), /^event.id: must be 1-128 characters/);
    assert.match(rejection(() => acceptEvent(contactCreated({ id: 'a b' }), now, 1000)), /^event.id/);
    assert.match(rejection(() => acceptEvent(contactCreated({ workspaceId: 'ws.1' }), now, 1000)), /^event.workspace_id: must be 1-64 characters/);
    assert.match(rejection(() => acceptEvent(contactCreated({ data: undefined }), now, 1000)), /^event.data: set the payload/);
    assert.match(rejection(() => acceptEvent(contactCreated({ type: 'contact.deleted' }), now, 1000)), /^event.type: unknown event type "contact.deleted"/);
    assert.match(rejection(() => acceptEvent(contactCreated({ type: 'message.incoming' }), now, 1000)), /^event.type: is "message.incoming" but the payload set is contactCreated/);
    assert.match(rejection(() => acceptEvent(contactCreated(), now, 100)), /^event: the delivered body would be \d+ bytes, above the limit of 100 bytes/);
  });
});

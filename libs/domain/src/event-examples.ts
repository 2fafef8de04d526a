// One realistic example of each event type, as the core product would publish it. ListEventTypes shows
// them rendered as delivered bodies, and the tests check them against the published JSON Schemas.
import type { Contact, Event, User } from '@webhooks/contracts';
import type { EventTypeName } from './event-types.js';

const at = new Date('2026-11-24T09:30:00.000Z');
const agent: User = { id: 'u_17', firstName: 'Lena', lastName: 'Vogel', email: 'lena@acme.example', kind: 'user' };
const bot: User = { id: 'bot_2', firstName: 'Welcome bot', lastName: '', email: '', kind: 'bot' };
const contact: Contact = {
  id: 'c_1042', firstName: 'Ana', lastName: 'Lima', email: 'ana.lima@example.com', phone: '+5511987654321', language: 'pt', countryCode: 'BR',
  profilePicUrl: 'https://cdn.example.com/avatars/c_1042.jpg', assignee: agent, tags: ['lead', 'pricing'], customFields: { plan_interest: 'enterprise' },
  createdAt: new Date('2026-11-20T14:02:11.000Z'), updatedAt: at,
};
const channel = { id: 'ch_3', name: 'WhatsApp Sales', source: 'whatsapp' };
const conversation = {
  id: 'conv_881', status: 'open', assignee: agent, openedAt: at, closedAt: undefined, openedBySource: 'contact', closedBy: undefined, category: '', summary: '', messageCount: 0,
};

type Data = NonNullable<Event['data']>;

const data: Record<EventTypeName, Data> = {
  'conversation.opened': { $case: 'conversationOpened', value: { contact, conversation, channel } },
  'conversation.closed': {
    $case: 'conversationClosed',
    value: { contact, channel, conversation: { ...conversation, status: 'closed', closedAt: new Date('2026-11-24T10:05:00.000Z'), closedBy: agent, category: 'sales', summary: 'Sent the enterprise price list; demo booked for Thursday.', messageCount: 14 } },
  },
  'contact.created': { $case: 'contactCreated', value: { contact: { ...contact, assignee: undefined, tags: [], updatedAt: undefined } } },
  'contact.updated': { $case: 'contactUpdated', value: { contact, changedFields: ['email', 'custom_fields.plan_interest'] } },
  'contact.assignee.updated': { $case: 'contactAssigneeUpdated', value: { contact, assignee: agent, previousAssignee: bot } },
  'contact.tag.updated': { $case: 'contactTagUpdated', value: { contact, addedTags: ['pricing'], removedTags: ['cold'] } },
  'message.incoming': {
    $case: 'messageIncoming',
    value: {
      contact, channel, conversationId: 'conv_881',
      message: {
        id: 'msg_5521', channelMessageId: 'wamid.HBgLNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA', text: 'Hi! Could you send me the price list?', sender: undefined, status: 'received', sentAt: at,
        attachments: [{ type: 'image', url: 'https://cdn.example.com/media/msg_5521.jpg', mimeType: 'image/jpeg', fileName: 'screenshot.jpg', sizeBytes: 48213 }],
      },
    },
  },
  'message.outgoing': {
    $case: 'messageOutgoing',
    value: {
      contact, channel, conversationId: 'conv_881',
      message: { id: 'msg_5522', channelMessageId: 'wamid.HBgLNTUxMTk4NzY1NDMyMRUCABEYEjRBQ0Q', text: 'Of course, here it is.', sender: agent, status: 'delivered', sentAt: new Date('2026-11-24T09:31:10.000Z'), attachments: [{ type: 'file', url: 'https://cdn.example.com/media/prices.pdf', mimeType: 'application/pdf', fileName: 'prices-2026.pdf', sizeBytes: 183004 }] },
    },
  },
  'comment.created': {
    $case: 'commentCreated',
    value: { contact, conversationId: 'conv_881', comment: { id: 'cm_77', text: '@Max can you prepare the enterprise quote?', author: agent, mentionedUserIds: ['u_21'], createdAt: at } },
  },
};

/** The example event of a type, under the given workspace. */
export function exampleEvent(type: EventTypeName, workspaceId = 'ws_example'): Event {
  return { id: `evt_example_${type.replaceAll('.', '_')}`, workspaceId, type, occurredAt: at, data: data[type] };
}

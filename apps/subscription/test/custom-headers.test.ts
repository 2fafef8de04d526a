// Custom header names that are also Object.prototype properties, on their way from the control plane's
// check to the route the dispatcher reads from NATS (protobuf map fields decode into plain objects).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Route } from '@webhooks/contracts';
import { checkCustomHeaders } from '@webhooks/domain';
import type { Webhook } from '../src/persistence/entities.js';
import { routeOf } from '../src/routes.js';

function routeThroughNats(headers: Record<string, string>): Route {
  const webhook = { id: 'wh_1', name: 'crm', url: 'https://crm.example.com/hook', eventTypes: [], headers, status: 'active', secretSealed: Buffer.from('sealed'), version: 1 } as unknown as Webhook;
  return Route.decode(Route.encode(routeOf(webhook, 'acme')).finish());
}

describe('custom headers named like Object.prototype properties', () => {
  it('keep their values from the check to the decoded route', () => {
    const headers = checkCustomHeaders({ constructor: 'c', toString: 't', hasOwnProperty: 'h', 'X-Api-Key': 'k' });
    // The jsonb column hands them back through JSON.parse, which makes each an own property.
    const stored = JSON.parse(JSON.stringify(headers)) as Record<string, string>;
    const route = routeThroughNats(stored);
    assert.deepEqual(Object.entries(route.headers), [['constructor', 'c'], ['tostring', 't'], ['hasownproperty', 'h'], ['x-api-key', 'k']]);
    // What the dispatcher does with them: spread into the request's headers.
    assert.equal({ ...route.headers }.constructor, 'c');
  });

  // The generated ts-proto decoder assigns map entries with `obj[key] = value`, and assigning a string to
  // "__proto__" does nothing: such a header would disappear from every protobuf message. It is refused
  // instead, by the check and at the gRPC edge (tests/e2e/src/control-plane.test.ts).
  it('refuses "__proto__" before it reaches a protobuf message', () => {
    assert.throws(() => checkCustomHeaders(JSON.parse('{"__proto__": "p"}') as Record<string, string>), /"__proto__" cannot be a header name/);
  });
});

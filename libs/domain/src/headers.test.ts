import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkCustomHeaders, keepRedactedHeaders, redactHeaders, redactedHeaderValue } from './headers.js';

describe('checkCustomHeaders', () => {
  it('keeps valid headers, with lower-case names', () => {
    assert.deepEqual(checkCustomHeaders({ 'X-Api-Key': 'k1', 'x-tenant': 'a b' }), { 'x-api-key': 'k1', 'x-tenant': 'a b' });
  });

  const refused: [string, Record<string, string>, RegExp][] = [
    ['host override', { Host: 'evil' }, /"Host" is set by the platform/],
    ['content-type override', { 'content-type': 'text/plain' }, /set by the platform/],
    ['content-length override', { 'Content-Length': '1' }, /set by the platform/],
    ['user-agent override', { 'User-Agent': 'x' }, /set by the platform/],
    ['webhook-* override', { 'Webhook-Signature': 'v1,x' }, /set by the platform/],
    ['bad name', { 'x key': 'v' }, /not a valid header name/],
    ['line break in value', { 'x-a': 'v\r\nx-b: injected' }, /line break or control character/],
    ['twice in different case', { 'X-A': '1', 'x-a': '2' }, /given twice/],
    ['too long value', { 'x-a': 'v'.repeat(1025) }, /longer than 1024/],
    ['too many', Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`x-h${i}`, 'v'])), /at most 20 headers/],
  ];
  for (const [name, headers, reason] of refused) {
    it(`refuses ${name}`, () => assert.throws(() => checkCustomHeaders(headers), reason));
  }

  // Names that are also properties of Object.prototype: valid header tokens, so a webhook may send them.
  for (const name of ['constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
    it(`keeps a header named ${name} with its value`, () => {
      const checked = checkCustomHeaders(JSON.parse(`{"${name}": "v-${name}", "X-Other": "o"}`) as Record<string, string>);
      assert.deepEqual(Object.entries(checked), [[name.toLowerCase(), `v-${name}`], ['x-other', 'o']]);
      assert.ok(Object.hasOwn(checked, name.toLowerCase()));
    });
  }

  // JSON.parse (as a request body is read) makes "__proto__" an own key; no protobuf message could carry it.
  it('refuses a header named __proto__, saying why', () => {
    assert.throws(() => checkCustomHeaders(JSON.parse('{"__proto__": "v", "X-Other": "o"}') as Record<string, string>), /"__proto__" cannot be a header name: it would be lost/);
  });

  it('still refuses "Constructor" and "constructor" as the same name given twice', () => {
    assert.throws(() => checkCustomHeaders({ Constructor: '1', constructor: '2' }), /given twice/);
  });
});

describe('redacted header values', () => {
  it('hides every value and keeps the names', () => {
    assert.deepEqual(redactHeaders({ 'x-api-key': 'k1', 'x-tenant': 'acme' }), { 'x-api-key': redactedHeaderValue, 'x-tenant': redactedHeaderValue });
  });

  it('keeps the stored value of a header sent back with the placeholder, and takes new values as given', () => {
    const current = { 'x-api-key': 'k1', 'x-tenant': 'acme', 'x-gone': 'g' };
    const sent = { 'x-api-key': redactedHeaderValue, 'x-tenant': 'beta', 'x-new': 'n' };
    assert.deepEqual(keepRedactedHeaders(sent, current), { 'x-api-key': 'k1', 'x-tenant': 'beta', 'x-new': 'n' });
  });

  it('refuses the placeholder for a header the webhook does not have, saying what to send', () => {
    assert.throws(() => keepRedactedHeaders({ 'x-api-key': redactedHeaderValue }, {}, 'webhook.headers'), /webhook\.headers: "x-api-key" has the value \[redacted\].*no such header to keep; send its value/);
  });

  it('keeps a header named like an Object.prototype property only when the webhook has it', () => {
    assert.throws(() => keepRedactedHeaders({ constructor: redactedHeaderValue }, {}), /no such header/);
    assert.deepEqual(keepRedactedHeaders({ constructor: redactedHeaderValue }, JSON.parse('{"constructor": "c"}') as Record<string, string>), { constructor: 'c' });
  });
});

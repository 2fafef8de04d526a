import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { exampleEvent } from './event-examples.js';
import { describeEventTypes } from './event-types.js';

describe('event type catalog', () => {
  const catalog = describeEventTypes((type) => exampleEvent(type));
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats.default(ajv);

  it('describes all nine types with a schema and an example body', () => {
    assert.equal(catalog.length, 9);
    for (const entry of catalog) {
      assert.ok(entry.description.length > 20, entry.name);
      const body = JSON.parse(entry.exampleBody) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body), ['id', 'type', 'timestamp', 'workspace_id', 'data']);
      assert.equal(body.type, entry.name);
    }
  });

  it("validates each example's data against its own schema, and not against another type's", () => {
    for (const entry of catalog) {
      const validate = ajv.compile(entry.dataSchema);
      const data = (JSON.parse(entry.exampleBody) as { data: unknown }).data;
      assert.ok(validate(data), `${entry.name}: ${ajv.errorsText(validate.errors)}`);
    }
    const contactCreated = ajv.compile(catalog.find((e) => e.name === 'contact.created')!.dataSchema);
    const message = (JSON.parse(catalog.find((e) => e.name === 'message.incoming')!.exampleBody) as { data: unknown }).data;
    assert.equal(contactCreated(message), false);
  });

  it('rejects data with wrong types or unknown fields', () => {
    const validate = ajv.compile(catalog.find((e) => e.name === 'message.incoming')!.dataSchema);
    assert.equal(validate({ message: { text: 42 } }), false);
    assert.equal(validate({ message: { attachments: [{ size_bytes: 'big' }] } }), false);
    assert.equal(validate({ contact: { nickname: 'x' } }), false);
    assert.equal(validate({ contact: { created_at: 'yesterday' } }), false);
  });
});

// JSON Schemas of the delivered event payloads, derived from the proto definitions so they can never
// drift from what is sent: field names as in the .proto (snake_case, as the delivered JSON has them),
// every field optional (empty values are left out of the JSON), no other fields.
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { protoRoot } from './paths.js';

type JsonSchema = Record<string, unknown>;

const scalar: Record<string, JsonSchema> = {
  string: { type: 'string' },
  bool: { type: 'boolean' },
  bytes: { type: 'string', contentEncoding: 'base64' },
  double: { type: 'number' },
  float: { type: 'number' },
  int32: { type: 'integer' },
  uint32: { type: 'integer', minimum: 0 },
  sint32: { type: 'integer' },
  fixed32: { type: 'integer', minimum: 0 },
  sfixed32: { type: 'integer' },
  int64: { type: 'integer' },
  uint64: { type: 'integer', minimum: 0 },
  sint64: { type: 'integer' },
  fixed64: { type: 'integer', minimum: 0 },
  sfixed64: { type: 'integer' },
};

let root: protobuf.Root | undefined;

function loadRoot(): protobuf.Root {
  if (root) return root;
  root = new protobuf.Root();
  // Imports resolve against the shipped proto folder; google/protobuf/* come with protobufjs itself.
  root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : join(protoRoot, target));
  root.loadSync('webhooks/v1/events.proto', { keepCase: true });
  root.resolveAll();
  return root;
}

function fieldSchema(field: protobuf.Field, defs: Record<string, JsonSchema>): JsonSchema {
  let item: JsonSchema;
  const resolved = field.resolvedType;
  if (field.type === 'google.protobuf.Timestamp' || resolved?.fullName === '.google.protobuf.Timestamp') item = { type: 'string', format: 'date-time' };
  else if (resolved instanceof protobuf.Enum) item = { type: 'string', enum: Object.keys(resolved.values) };
  else if (resolved instanceof protobuf.Type) item = { $ref: `#/$defs/${define(resolved, defs)}` };
  else item = scalar[field.type] ?? {};
  if (field instanceof protobuf.MapField) return { type: 'object', additionalProperties: item };
  return field.repeated ? { type: 'array', items: item } : item;
}

function define(type: protobuf.Type, defs: Record<string, JsonSchema>): string {
  const name = type.name;
  if (defs[name]) return name;
  defs[name] = {};
  defs[name] = {
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(type.fieldsArray.map((f) => [f.name, fieldSchema(f, defs)])),
  };
  return name;
}

/** The JSON Schema (draft 2020-12) of one message of webhooks/v1/events.proto, e.g. "ContactCreated". */
export function payloadJsonSchema(messageName: string): JsonSchema {
  const type = loadRoot().lookupType(`webhooks.v1.${messageName}`);
  const defs: Record<string, JsonSchema> = {};
  const top = define(type, defs);
  const { [top]: body, ...rest } = defs;
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', title: messageName, ...body, ...(Object.keys(rest).length > 0 ? { $defs: rest } : {}) };
}

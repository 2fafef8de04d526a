// Custom headers a webhook sends with every delivery. They may not change how the delivery is framed,
// signed or identified, so those names are reserved. Their values are write-only, like the endpoint's
// credentials: teams put API keys in them. Every answer and the delivery log show each name with
// redactedHeaderValue in place of its value, and an update that sends that placeholder back for a
// header the webhook has keeps the stored value, so reading a webhook and writing it back loses nothing.
import { invalidArgument } from './errors.js';

const tokenPattern = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
// Visible ASCII and spaces/tabs, no line breaks (header injection).
const valuePattern = /^[\t\x20-\x7e\x80-\xff]*$/;
const reserved = new Set(['host', 'content-type', 'content-length', 'user-agent', 'connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'keep-alive', 'expect', 'traceparent', 'tracestate']);
const maxHeaders = 20;
const maxValueLength = 1024;

/**
 * Checks a webhook's custom headers and returns them with lower-case names. Names such as "constructor"
 * are valid header tokens, so they are collected in a Map (no inherited keys to collide with) and returned
 * as plain own properties. "__proto__" is refused: protobuf's generated decoders would drop it.
 */
export function checkCustomHeaders(headers: Readonly<Record<string, string>>, field = 'headers'): Record<string, string> {
  const entries = Object.entries(headers);
  if (entries.length > maxHeaders) throw invalidArgument(field, `at most ${maxHeaders} headers, got ${entries.length}`);
  const out = new Map<string, string>();
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if (!tokenPattern.test(name)) throw invalidArgument(field, `"${name.slice(0, 80)}" is not a valid header name (letters, digits and !#$%&'*+.^_\`|~-, up to 64)`);
    if (reserved.has(lower) || lower.startsWith('webhook-') || lower.startsWith('proxy-')) {
      throw invalidArgument(field, `"${name}" is set by the platform and cannot be overridden`);
    }
    // Valid as a token, but no protobuf message can carry it (its decoders drop it, see grpc-kit's server).
    if (lower === '__proto__') throw invalidArgument(field, '"__proto__" cannot be a header name: it would be lost on the way to the dispatcher; use another name');
    if (out.has(lower)) throw invalidArgument(field, `"${name}" is given twice`);
    if (value.length > maxValueLength) throw invalidArgument(field, `the value of "${name}" is longer than ${maxValueLength} characters`);
    if (!valuePattern.test(value)) throw invalidArgument(field, `the value of "${name}" contains a line break or control character`);
    out.set(lower, value);
  }
  // fromEntries defines each key as an own property: "__proto__" stays a header, not the prototype.
  return Object.fromEntries(out);
}

/** What answers and the delivery log show in place of a custom header's value. */
export const redactedHeaderValue = '[redacted]';

/** The headers with every value replaced by the placeholder, names kept. */
export function redactHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.keys(headers).map((name) => [name, redactedHeaderValue]));
}

/**
 * New headers (checked, lower-case names) for a webhook whose headers are `current`: a header sent with
 * the placeholder keeps its stored value. The placeholder for a header the webhook does not have is
 * refused: there is no value to keep. On a create, `current` is empty.
 */
export function keepRedactedHeaders(headers: Readonly<Record<string, string>>, current: Readonly<Record<string, string>>, field = 'headers'): Record<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(headers)) {
    if (value !== redactedHeaderValue) out.set(name, value);
    else if (Object.hasOwn(current, name)) out.set(name, current[name]!);
    else throw invalidArgument(field, `"${name}" has the value ${redactedHeaderValue}, which answers show in place of a stored value, but the webhook has no such header to keep; send its value`);
  }
  return Object.fromEntries(out);
}

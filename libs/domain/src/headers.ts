// Custom headers a webhook sends with every delivery. They may not change how the delivery is framed,
// signed or identified, so those names are reserved.
import { invalidArgument } from './errors.js';

const tokenPattern = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
// Visible ASCII and spaces/tabs, no line breaks (header injection).
const valuePattern = /^[\t\x20-\x7e\x80-\xff]*$/;
const reserved = new Set(['host', 'content-type', 'content-length', 'user-agent', 'connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'keep-alive', 'expect', 'traceparent', 'tracestate']);
const maxHeaders = 20;
const maxValueLength = 1024;

export function checkCustomHeaders(headers: Readonly<Record<string, string>>, field = 'headers'): Record<string, string> {
  const entries = Object.entries(headers);
  if (entries.length > maxHeaders) throw invalidArgument(field, `at most ${maxHeaders} headers, got ${entries.length}`);
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if (!tokenPattern.test(name)) throw invalidArgument(field, `"${name.slice(0, 80)}" is not a valid header name (letters, digits and !#$%&'*+.^_\`|~-, up to 64)`);
    if (reserved.has(lower) || lower.startsWith('webhook-') || lower.startsWith('proxy-')) {
      throw invalidArgument(field, `"${name}" is set by the platform and cannot be overridden`);
    }
    if (lower in out) throw invalidArgument(field, `"${name}" is given twice`);
    if (value.length > maxValueLength) throw invalidArgument(field, `the value of "${name}" is longer than ${maxValueLength} characters`);
    if (!valuePattern.test(value)) throw invalidArgument(field, `the value of "${name}" contains a line break or control character`);
    out[lower] = value;
  }
  return out;
}

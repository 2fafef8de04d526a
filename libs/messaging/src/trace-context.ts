// W3C trace context (traceparent/tracestate) in NATS message headers, so one trace follows an event from
// ingest through the dispatcher's attempts, retries minutes later included. Uses whatever propagator the
// OpenTelemetry API has registered; with none (tracing off) no headers are added and nothing is parsed.
import { context, propagation, ROOT_CONTEXT, type Context, type TextMapGetter } from '@opentelemetry/api';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';

const getter: TextMapGetter<MsgHdrs> = {
  get: (carrier, key) => (carrier.has(key) ? carrier.get(key) : undefined),
  keys: (carrier) => carrier.keys(),
};

/** The given (default: active) context as plain entries, e.g. for a field of a message batched with others. */
export function traceEntries(from: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(from, carrier);
  return carrier;
}

/** The context such entries carry (the root context when they carry none). */
export function traceContextOfEntries(entries: Record<string, string>): Context {
  return propagation.extract(ROOT_CONTEXT, entries);
}

/** Headers carrying the given (default: active) context, or undefined when there is nothing to carry. */
export function traceHeaders(from: Context = context.active()): MsgHdrs | undefined {
  const entries = Object.entries(traceEntries(from));
  if (entries.length === 0) return undefined;
  const h = natsHeaders();
  for (const [key, value] of entries) h.set(key, value);
  return h;
}

/** The context a message's headers carry (the root context when they carry none). */
export function traceContextOf(headers: MsgHdrs | undefined): Context {
  return headers ? propagation.extract(ROOT_CONTEXT, headers, getter) : ROOT_CONTEXT;
}

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { context, propagation, trace, TraceFlags } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { traceContextOf, traceHeaders } from './trace-context.js';

describe('trace context in NATS headers', () => {
  after(() => propagation.disable());

  it('adds nothing while no propagator is registered', () => {
    propagation.disable();
    assert.equal(traceHeaders(), undefined);
  });

  it('carries the span context from publisher to consumer', () => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const spanContext = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };
    const sent = traceHeaders(trace.setSpanContext(context.active(), spanContext));
    assert.equal(sent?.get('traceparent'), '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    const received = trace.getSpanContext(traceContextOf(sent));
    assert.deepEqual({ traceId: received?.traceId, spanId: received?.spanId, traceFlags: received?.traceFlags }, spanContext);
    assert.equal(trace.getSpanContext(traceContextOf(undefined)), undefined);
  });
});

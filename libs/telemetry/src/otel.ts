// Starts the OpenTelemetry Node SDK before the service loads anything it instruments. Configured only by
// the standard OTEL_* variables: OTEL_SDK_DISABLED=true turns everything off; traces go to the OTLP
// endpoint when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT, or OTEL_TRACES_EXPORTER) is set;
// OTEL_TRACES_SAMPLER(_ARG) choose sampling; metrics are always scraped from /metrics and also pushed
// over OTLP when OTEL_METRICS_EXPORTER includes "otlp".
import { register } from 'node:module';
import { hostname } from 'node:os';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';

export interface Telemetry {
  /** Absent when the SDK is disabled. */
  readonly prometheus: PrometheusExporter | undefined;
  shutdown(): Promise<void>;
}

let running: Telemetry | undefined;

async function tracingInstrumentations() {
  const [{ GrpcInstrumentation }, { UndiciInstrumentation }] = await Promise.all([import('@opentelemetry/instrumentation-grpc'), import('@opentelemetry/instrumentation-undici')]);
  return [new GrpcInstrumentation(), new UndiciInstrumentation()];
}

/** The telemetry the service started with (a disabled one if none was started). */
export function telemetry(): Telemetry {
  return running ?? { prometheus: undefined, shutdown: async () => {} };
}

export async function startTelemetry(serviceName: string, serviceVersion: string): Promise<Telemetry> {
  if (process.env.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return (running = telemetry());
  const exportTraces = Boolean(process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || process.env.OTEL_TRACES_EXPORTER);
  // Without an endpoint there is no tracing at all, instead of spans sent to a default localhost
  // collector that is not there: the SDK then registers no tracer provider, so spans are no-ops, log
  // lines carry no trace ids and no trace context is sent on. The gRPC and HTTP instrumentations, which
  // would only make those no-op spans (a few percent of the CPU per event), are then left out as well.
  // Metrics are unaffected.
  if (!exportTraces) process.env.OTEL_TRACES_EXPORTER = 'none';
  // grpc-js and undici are loaded through ESM imports: the import hook lets the instrumentations see them.
  if (exportTraces) register('import-in-the-middle/hook.mjs', import.meta.url, { data: { include: ['@grpc/grpc-js', 'undici'] } });

  const [{ NodeSDK }, instrumentations, { PrometheusExporter }, { resourceFromAttributes }, sdkMetrics, otlpMetrics] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    exportTraces ? tracingInstrumentations() : [],
    import('@opentelemetry/exporter-prometheus'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/exporter-metrics-otlp-http'),
  ]);
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const readers: InstanceType<typeof sdkMetrics.PeriodicExportingMetricReader>[] = [];
  if ((process.env.OTEL_METRICS_EXPORTER ?? '').split(',').includes('otlp')) {
    readers.push(new sdkMetrics.PeriodicExportingMetricReader({ exporter: new otlpMetrics.OTLPMetricExporter() }));
  }
  const sdk = new NodeSDK({
    serviceName,
    // Resource detection is skipped: its asynchronous attributes would hold every export back.
    autoDetectResources: false,
    resource: resourceFromAttributes({
      'service.name': serviceName,
      'service.version': serviceVersion,
      'service.instance.id': `${hostname()}-${process.pid}`,
      ...(process.env.OTEL_SERVICE_NAMESPACE ? { 'service.namespace': process.env.OTEL_SERVICE_NAMESPACE } : {}),
    }),
    metricReaders: [prometheus, ...readers],
    instrumentations,
  });
  sdk.start();
  running = { prometheus, shutdown: () => sdk.shutdown() };
  return running;
}

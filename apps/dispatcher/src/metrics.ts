// The dispatcher's metrics. Labels stay bounded: outcomes and stream names, never webhook ids.
import { metrics } from '@webhooks/telemetry';

const meter = metrics.getMeter('dispatcher');
// Buckets in seconds: attempts end within the 5 s deadline; latency includes retries over minutes.
const attemptBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const latencyBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 180, 300];

export const dispatcherMetrics = {
  attempts: meter.createCounter('webhook.attempts', { description: 'Delivery attempts by outcome (succeeded, failed)' }),
  deliveries: meter.createCounter('webhook.deliveries', { description: 'Deliveries finished, by result (succeeded, dropped)' }),
  attemptDuration: meter.createHistogram('webhook.attempt.duration.seconds', { unit: 's', description: 'Time of one attempt: connect, request and whole response', advice: { explicitBucketBoundaries: attemptBuckets } }),
  deliveryLatency: meter.createHistogram('webhook.delivery.latency.seconds', { unit: 's', description: 'From ingest accepting an event to its successful delivery', advice: { explicitBucketBoundaries: latencyBuckets } }),
  breakerTrips: meter.createCounter('webhook.breaker.trips', { description: 'Workspaces whose failure threshold was crossed' }),
  breakerFailuresDropped: meter.createCounter('webhook.breaker.failures.dropped', { description: 'Failed attempts not counted towards the breaker because its queue was full' }),
  staleTripsDropped: meter.createCounter('webhook.breaker.stale_trips.dropped', { description: 'Pending trips found older than the trip stream duplicate window, dropped unpublished' }),
  deliveryLoopRestarts: meter.createCounter('webhook.delivery_loop.restarts', { description: 'Delivery loops of a webhook restarted after they ended with an error' }),
  recordBatchSize: meter.createHistogram('webhook.attempt_record.batch_size', { description: 'Records of successful attempts stored together in one message', advice: { explicitBucketBoundaries: [1, 2, 5, 10, 20, 50, 100, 200, 500] } }),
  recordRetries: meter.createCounter('webhook.attempt_record.retries', { description: 'Tries to store a decided attempt record that failed and were repeated in place' }),
  streamMessages: meter.createObservableGauge('webhook.stream.messages', { description: 'Messages held per JetStream stream' }),
};

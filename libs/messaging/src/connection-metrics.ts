// The NATS client's own counts as metrics of the service: messages and bytes this process sent to the
// NATS server (`out`: publishes, acks, requests, pulls) and received from it (`in`). Per delivery they
// show what the NATS server is asked to do, in counts that do not move with the machine's speed, as
// timings do (`npm run bench` prints them per delivery). Every connection made by connectNats counts;
// a closed connection's last counts stay in the totals, so the counters never go down.
import { metrics } from '@opentelemetry/api';
import type { NatsConnection, Stats } from '@nats-io/nats-core';

const meter = metrics.getMeter('nats-client');
const messages = meter.createObservableCounter('nats.client.messages', { description: 'Messages this process sent to (direction=out) and received from (direction=in) the NATS server' });
const bytes = meter.createObservableCounter('nats.client.bytes', { unit: 'By', description: 'Bytes this process sent to (direction=out) and received from (direction=in) the NATS server' });

const open = new Set<NatsConnection>();
const closed: Stats = { inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0 };

function totals(): Stats {
  const sum = { ...closed };
  for (const nc of open) {
    const stats = nc.stats();
    sum.inMsgs += stats.inMsgs;
    sum.outMsgs += stats.outMsgs;
    sum.inBytes += stats.inBytes;
    sum.outBytes += stats.outBytes;
  }
  return sum;
}

// One read of the connections per collection, for both counters.
meter.addBatchObservableCallback(
  (result) => {
    const sum = totals();
    result.observe(messages, sum.outMsgs, { direction: 'out' });
    result.observe(messages, sum.inMsgs, { direction: 'in' });
    result.observe(bytes, sum.outBytes, { direction: 'out' });
    result.observe(bytes, sum.inBytes, { direction: 'in' });
  },
  [messages, bytes],
);

/** Counts the connection's messages and bytes in the service's metrics until it closes, and keeps them after. */
export function countConnection(nc: NatsConnection): void {
  open.add(nc);
  void nc.closed().then(() => {
    const stats = nc.stats();
    closed.inMsgs += stats.inMsgs;
    closed.outMsgs += stats.outMsgs;
    closed.inBytes += stats.inBytes;
    closed.outBytes += stats.outBytes;
    open.delete(nc);
  });
}

// The request hook against a real NATS server: answered requests resolve without building an error each;
// one without responders, one that times out and one pending when the connection closes still fail.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RequestError } from '@nats-io/nats-core/internal';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { cheapRequestCancel, hookFits, natsCoreVersion } from './request-cancel.js';

const natsUrl = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

describe('requests without a thrown-away error', () => {
  const subject = `req_${process.pid}_${Date.now().toString(36)}`;
  let nc: NatsConnection;

  before(async () => {
    assert.equal(cheapRequestCancel(), true, 'the client internals match');
    nc = await connect({ servers: natsUrl, noAsyncTraces: true });
    nc.subscribe(`${subject}.echo`, {
      callback: (_error, msg) => {
        msg.respond(msg.data);
      },
    });
    nc.subscribe(`${subject}.silent`, { callback: () => {} });
  });

  after(async () => {
    await nc?.close();
  });

  it('answers requests, and builds no error for an answered one', async () => {
    // Every RequestError sets its name in its constructor: a setter on the prototype counts them.
    let built = 0;
    Object.defineProperty(RequestError.prototype, 'name', {
      configurable: true,
      get: () => 'RequestError',
      set(this: Error, value: string) {
        built++;
        Object.defineProperty(this, 'name', { value, configurable: true, writable: true });
      },
    });
    let answers: string[];
    try {
      answers = await Promise.all(Array.from({ length: 100 }, async (_, i) => new TextDecoder().decode((await nc.request(`${subject}.echo`, `m${i}`, { timeout: 2_000 })).data)));
    } finally {
      delete (RequestError.prototype as { name?: string }).name;
    }
    assert.deepEqual(answers, Array.from({ length: 100 }, (_, i) => `m${i}`));
    assert.equal(built, 0, 'errors built for answered requests');
  });

  it('still fails a request nobody answers, one that times out, and one pending when the connection closes', async () => {
    await assert.rejects(nc.request(`${subject}.nobody`, 'x', { timeout: 1_000 }), (error: Error) => error instanceof RequestError && error.isNoResponders());
    await assert.rejects(nc.request(`${subject}.silent`, 'x', { timeout: 200 }), /timeout/i);
    const other = await connect({ servers: natsUrl, noAsyncTraces: true });
    other.subscribe(`${subject}.silent2`, { callback: () => {} });
    const pending = other.request(`${subject}.silent2`, 'x', { timeout: 5_000 });
    await other.close();
    await assert.rejects(pending, RequestError);
  });

  it('fits only the client line it was written for, with the method shape it replaces', () => {
    assert.match(natsCoreVersion(), /^3\.4\.\d+$/);
    const cancel = (_error?: Error) => {};
    assert.equal(hookFits('3.4.0', cancel), true);
    assert.equal(hookFits('3.5.0', cancel), false);
    assert.equal(hookFits('4.0.0', cancel), false);
    assert.equal(hookFits('3.4.0', () => {}), false);
    assert.equal(hookFits('3.4.0', undefined), false);
  });
});

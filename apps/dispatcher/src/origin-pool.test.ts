// Connections per origin (origin-pool.ts) through the sender, against real endpoints on 127.0.0.1: reuse,
// hanging requests beside flowing ones with the free connections bounded, and a connection that broke.
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HttpSender } from './http-sender.js';

const policy = { allowHttp: true, allowedHosts: ['127.0.0.0/8'], maxLength: 2048 };
const body = new TextEncoder().encode('{"id":"evt_1"}');

describe('connections per origin', () => {
  let server: Server;
  let origin = '';
  const sockets = new Set<Socket>();
  let opened = 0;
  const hanging: ServerResponse[] = [];

  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/hang') hanging.push(res);
        else if (req.url === '/reset') req.socket.destroy();
        else res.end('ok');
      });
    });
    server.on('connection', (socket) => {
      opened++;
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const post = (sender: HttpSender, path: string, deadline?: number) => sender.send({ url: `${origin}${path}`, headers: { 'content-type': 'application/json' }, body }, deadline === undefined ? {} : { deadline });

  it('reuses one connection for requests one after another', async () => {
    const sender = new HttpSender(policy, 2_000, { connectionsPerOrigin: 8 });
    const before = opened;
    for (let i = 0; i < 20; i++) assert.equal((await post(sender, '/ok')).kind, 'succeeded');
    assert.equal(opened - before, 1);
    assert.deepEqual(sender.connections(origin), { size: 1, inUse: 0, free: 1 });
    await sender.close();
  });

  it('lets each hanging request hold its own connection while the rest of the origin flows, and keeps at most the budget free', async () => {
    const sender = new HttpSender(policy, 1_500, { connectionsPerOrigin: 2 });
    const stuck = Array.from({ length: 4 }, () => post(sender, '/hang'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    // More hanging requests than the budget: the others are not held behind them.
    const results = await Promise.all(Array.from({ length: 5 }, async () => {
      const kinds: string[] = [];
      for (let i = 0; i < 6; i++) kinds.push((await post(sender, '/ok')).kind);
      return kinds;
    }));
    assert.deepEqual(results.flat().filter((kind) => kind !== 'succeeded'), []);
    const during = sender.connections(origin)!;
    assert.equal(during.inUse, 4, 'the hanging requests hold one each');
    assert.equal(during.free, 2, 'no more free connections kept than the budget');
    assert.equal(during.size, 6);
    assert.deepEqual((await Promise.all(stuck)).map((r) => r.kind === 'failed' && r.reason), Array.from({ length: 4 }, () => 'timeout: no complete response within 1500 ms'));
    assert.deepEqual(sender.connections(origin), { size: 2, inUse: 0, free: 2 });
    await sender.close();
  });

  it('sends the next request on a new socket after the endpoint broke the connection', async () => {
    const sender = new HttpSender(policy, 2_000, { connectionsPerOrigin: 1 });
    const reset = await post(sender, '/reset');
    assert.equal(reset.kind === 'failed' && reset.reason, 'connection reset by the endpoint');
    assert.equal((await post(sender, '/ok')).kind, 'succeeded');
    assert.equal(sender.connections(origin)!.size, 1);
    await sender.close();
  });
});

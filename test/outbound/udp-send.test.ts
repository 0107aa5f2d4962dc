import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { ByteBudget } from '../../src/outbound/byte-budget.js';
import { DatagramSender } from '../../src/outbound/udp-send.js';
import { bindKeepingPort, connectedPeer } from '../../src/outbound/udp-socket.js';
import { literalLookup } from '../../src/dns/literal-lookup.js';
import { closeDgram } from '../helpers/udp.js';

async function bound(): Promise<Socket> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

/** The next datagram `socket` receives, or undefined after `ms`. */
function next(socket: Socket, ms = 2_000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('message', onMessage);
      resolve(undefined);
    }, ms);
    const onMessage = (msg: Buffer): void => {
      clearTimeout(timer);
      resolve(msg);
    };
    socket.once('message', onMessage);
  });
}

test('a header and its payload arrive as one datagram, small or large, addressed or connected', async (t) => {
  const [from, to] = [await bound(), await bound()];
  t.after(() => Promise.all([closeDgram(from), closeDgram(to)]));
  const budget = new ByteBudget(1 << 20);
  const failures: Error[] = [];
  const sender = new DatagramSender(from, budget, (e) => failures.push(e));
  const head = Buffer.from([0, 0, 0, 1, 127, 0, 0, 1, 0, 53]);
  for (const size of [5, 8_000]) {
    const payload = Buffer.alloc(size, size & 0xff);
    const got = next(to);
    assert.equal(sender.send(head, payload, to.address().port, '127.0.0.1'), true);
    assert.deepEqual(await got, Buffer.concat([head, payload]), `${size}-byte payload, addressed`);
  }
  from.connect(to.address().port, '127.0.0.1');
  await once(from, 'connect');
  assert.deepEqual(connectedPeer(from), { host: '127.0.0.1', port: to.address().port });
  const got = next(to);
  assert.equal(sender.send(undefined, Buffer.from('connected')), true);
  assert.equal((await got)?.toString(), 'connected');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(failures, []);
  assert.equal(budget.used, 0, 'nothing is held once the kernel took the datagrams');
});

test('a budget too short sends nothing; a synchronous throw is a failure that holds nothing', async (t) => {
  const [from, to] = [await bound(), await bound()];
  t.after(() => Promise.all([closeDgram(from), closeDgram(to)]));
  const budget = new ByteBudget(100);
  assert.equal(budget.take(90), true, 'most of it held elsewhere');
  const failures: string[] = [];
  const sender = new DatagramSender(from, budget, (e) => failures.push((e as NodeJS.ErrnoException).code ?? e.message));
  const got = next(to, 300);
  assert.equal(sender.send(Buffer.alloc(10), Buffer.alloc(10), to.address().port, '127.0.0.1'), false);
  assert.equal(await got, undefined, 'not sent');
  assert.equal(sender.send(undefined, Buffer.alloc(5), 0, '127.0.0.1'), true);
  assert.deepEqual(failures, ['ERR_SOCKET_BAD_PORT']);
  assert.equal(budget.used, 90);
  assert.equal(connectedPeer(from), undefined);
});

test('a sender whose socket closed sends nothing and gives back what it held', async () => {
  const s = await bound();
  const budget = new ByteBudget(100);
  const sender = new DatagramSender(s, budget, () => assert.fail('no send is attempted'));
  await closeDgram(s);
  assert.equal(sender.send(undefined, Buffer.alloc(5), 9, '127.0.0.1'), false);
  assert.equal(budget.used, 0);
});

test('a socket bound by bindKeepingPort keeps its port when it connects and disconnects', async (t) => {
  const peer = await bound();
  const s = createSocket({ type: 'udp4', lookup: literalLookup });
  t.after(() => Promise.all([closeDgram(peer), closeDgram(s)]));
  assert.equal(bindKeepingPort(s, 4), true);
  const port = s.address().port;
  assert.notEqual(port, 0);
  s.connect(peer.address().port, '127.0.0.1');
  assert.deepEqual(connectedPeer(s), { host: '127.0.0.1', port: peer.address().port }, 'connected before connect() returned');
  s.disconnect();
  assert.equal(s.address().port, port);
  const got = next(s);
  peer.send('still here', port, '127.0.0.1');
  assert.equal((await got)?.toString(), 'still here');
});

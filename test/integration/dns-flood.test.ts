// A flood of new names at a name server that never answers. c-ares tells the questions out on
// one channel apart by a 16-bit ID and, with all 65 536 out, looks for a free one for ever; and
// once a server has timed out, it may give each question a socket of its own: the gateway must
// bound the questions it has out. It runs as a process of its own here, so a frozen gateway
// fails the test instead of freezing it. The silent name server is a test instrument:
// a UDP socket that reads the questions and answers none.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCliGateway } from '../helpers/cli.js';
import { readBytes, socksConnect, startEchoServer } from '../helpers/index.js';
import { tempDir } from '../helpers/temp-dir.js';
import { closeDgram, socksUdpClient, type SocksUdpClient } from '../helpers/udp.js';

const ASSOCIATIONS = 140;
const NAMES_EACH = 256; // an association's lookups in flight at most: 35 840 lookups, 71 680 questions

test('a flood of new names at a silent name server leaves the gateway answering (c-ares never runs out of question IDs)', { timeout: 180_000 }, async (t) => {
  const silent = createSocket('udp4');
  silent.bind(0, '127.0.0.1');
  await once(silent, 'listening');
  t.after(() => closeDgram(silent));
  silent.on('message', () => {});
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const dir = await tempDir('dns-flood');
  const config = join(dir, 'socksgate.yaml');
  await writeFile(config, `listen: [{ host: 127.0.0.1, port: 0 }]\ndns: { servers: ["127.0.0.1:${silent.address().port}"], timeout: 5s }\n`);
  const gw = await startCliGateway(config);
  t.after(() => gw.child.kill('SIGKILL'));

  const clients: SocksUdpClient[] = [];
  t.after(() => Promise.all(clients.map((c) => c.close())));
  for (let a = 0; a < ASSOCIATIONS; a++) clients.push(await socksUdpClient({ host: '127.0.0.1', port: gw.port }));
  for (let n = 0; n < NAMES_EACH; n++) {
    for (let a = 0; a < ASSOCIATIONS; a++) clients[a]!.send({ host: `n${n}-a${a}.flood.test`, port: 9 }, 'x');
    if (n % 16 === 15) await sleep(5); // let the datagrams out of this process's socket buffers
  }
  // Past dns.timeout every lookup of the flood has failed. Meanwhile the gateway's descriptors
  // stay bounded: c-ares may give each question a socket of its own.
  let descriptors = 0;
  for (let waited = 0; waited < 6_000; waited += 100) {
    descriptors = Math.max(descriptors, readdirSync(`/proc/${gw.child.pid}/fd`).length);
    await sleep(100);
  }
  // A CONNECT that needs no lookup at all is answered and relayed: the process is not stuck in c-ares.
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 10_000);
  t.after(() => socket.destroy());
  socket.write('ping');
  assert.equal((await readBytes(socket, 4, 10_000)).toString(), 'ping');
  // The flood reached the resolver (else the test proves nothing): each failed lookup is logged.
  const failed = (): number => gw.lines.filter((l) => l['msg'] === 'dns lookup failed').length;
  for (let waited = 0; waited < 10_000 && failed() < 20_000; waited += 100) await sleep(100);
  assert.ok(failed() >= 20_000, `${failed()} lookups failed`);
  assert.ok(descriptors < 8_000, `the gateway held ${descriptors} descriptors`);
});

// Sessions on their less travelled paths: clients that pipeline everything and
// leave at once, clients that give up midway. Each still gets its answer (or a
// clean close) and exactly one access-log line.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { closedWithin, echoAndGateway, rawClient, readBytes, startGateway, startHttpServer } from '../helpers/index.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const portHex = (p: number): string => p.toString(16).padStart(4, '0');

test('greeting + request + payload + FIN in one go: the payload is relayed and the echo comes back', async (t) => {
  const { echo, gw } = await echoAndGateway(t);
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  s.end(Buffer.concat([hex(`05 01 00 05 01 00 01 7f000001 ${portHex(echo.port)}`), Buffer.from('ping')]));
  const head = await readBytes(s, 12);
  assert.equal(head[3], 0x00);
  assert.equal((await readBytes(s, 4)).toString(), 'ping');
  assert.ok(await closedWithin(s));
  const line = await gw.accessLog((l) => l.cmd === 'connect');
  assert.equal(line?.up, 4);
  assert.equal(line?.down, 4);
  assert.equal(line?.error, undefined);
});

test('an HTTP request sent with the handshake and a FIN (nc -q style) gets its answer', async (t) => {
  const http = await startHttpServer();
  t.after(() => http.close());
  const gw = await startGateway({ dns: { hosts: { localhost: '127.0.0.1' } } });
  t.after(() => gw.close());
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  const name = Buffer.from('localhost');
  const request = Buffer.concat([hex('05 01 00 03'), Buffer.from([name.length]), name, hex(portHex(http.port))]);
  s.end(Buffer.concat([hex('05 01 00'), request, Buffer.from('GET /nc HTTP/1.0\r\nHost: x\r\n\r\n')]));
  const all = await readBytes(s, 4096);
  assert.equal(all[3], 0x00);
  assert.match(all.toString('latin1'), /hello \/nc from/);
});

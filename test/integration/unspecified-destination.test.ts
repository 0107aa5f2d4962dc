// 0.0.0.0 and :: as a destination: the kernel delivers a connection or a datagram to them to
// this host's loopback address, so a rule for the loopback networks must hold for them on every
// front. Loopback servers stand in for the services a `block` rule keeps clients away from; a
// request that got past the rule would reach them (and fail the test), nothing leaves the host.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { rawClient, readBytes, startEchoServer, startGateway, startHttpServer, httpExchange } from '../helpers/index.js';
import { socksUdpClient, startUdpEchoServer } from '../helpers/udp.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const LOOPBACK_BLOCKED = {
  rules: [{ name: 'no-loopback', cidrs: ['127.0.0.0/8', '::1/128'], action: 'block' }],
  default: 'direct',
};

/** A SOCKS5 CONNECT with ATYP + ADDR as given; the reply code. */
async function socks5Rep(gwPort: number, atypAndAddr: Buffer, port: number): Promise<number | undefined> {
  const s = await rawClient(gwPort);
  s.on('error', () => {});
  try {
    s.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0]), atypAndAddr, Buffer.from([port >> 8, port & 0xff])]));
    return (await readBytes(s, 4))[3];
  } finally {
    s.destroy();
  }
}

const v4 = (ip: string): Buffer => Buffer.from([1, ...ip.split('.').map(Number)]);
const domain = (name: string): Buffer => Buffer.concat([Buffer.from([3, name.length]), Buffer.from(name, 'latin1')]);
const V6_ANY = Buffer.from([4, ...new Array<number>(16).fill(0)]);

async function socks4Reply(gwPort: number, ip: number[], port: number): Promise<number | undefined> {
  const s = await rawClient(gwPort);
  s.on('error', () => {});
  try {
    s.write(Buffer.from([4, 1, port >> 8, port & 0xff, ...ip, 0]));
    return (await readBytes(s, 8))[1];
  } finally {
    s.destroy();
  }
}

async function httpStatus(gwPort: number, request: string): Promise<string> {
  const s = await rawClient(gwPort);
  s.on('error', () => {});
  try {
    return (await httpExchange(s, request)).split('\r\n')[0]!;
  } finally {
    s.destroy();
  }
}

test('a block on 127.0.0.0/8 and ::1 holds for 0.0.0.0 and :: on SOCKS5, SOCKS4 and HTTP (CONNECT and absolute-form)', async (t) => {
  const local4 = await startHttpServer('127.0.0.1');
  t.after(() => local4.close());
  const local6 = await startEchoServer('::1');
  t.after(() => local6.close());
  const gw = await startGateway(LOOPBACK_BLOCKED);
  t.after(() => gw.close());

  for (const [what, addr, port] of [
    ['ATYP 1 0.0.0.0', v4('0.0.0.0'), local4.port],
    ['ATYP 4 ::', V6_ANY, local6.port],
    ['ATYP 3 0.0.0.0', domain('0.0.0.0'), local4.port],
    ['ATYP 3 ::ffff:0.0.0.0', domain('::ffff:0.0.0.0'), local4.port],
    ['ATYP 3 ::', domain('::'), local6.port],
  ] as const) {
    assert.equal(await socks5Rep(gw.port, addr, port), 0x02, what);
  }
  assert.equal(await socks4Reply(gw.port, [0, 0, 0, 0], local4.port), 0x5b, 'SOCKS4 DSTIP 0.0.0.0');
  for (const authority of [`0.0.0.0:${local4.port}`, `[::]:${local6.port}`, `[::ffff:0.0.0.0]:${local4.port}`]) {
    const line = await httpStatus(gw.port, `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    assert.match(line, /^HTTP\/1\.1 403 /, `CONNECT ${authority}`);
  }
  // The URL standard reads http://0/ as http://0.0.0.0/.
  for (const url of [`http://0:${local4.port}/`, `http://0.0.0.0:${local4.port}/`, `http://[::ffff:0:0]:${local4.port}/`]) {
    const line = await httpStatus(gw.port, `GET ${url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(line, /^HTTP\/1\.1 403 /, url);
  }
  assert.deepEqual(local6.peers, [], 'nothing reached ::1');
  const line = await gw.accessLog((l) => l['dest'] === `0.0.0.0:${local4.port}`);
  assert.equal(line?.['rule'], 'no-loopback');
  // The same gateway still relays where no rule says otherwise: the refusals above are the rule's.
  const open = await startGateway({ default: 'direct' });
  t.after(() => open.close());
  assert.equal(await socks5Rep(open.port, v4('0.0.0.0'), local4.port), 0x00, 'without the rule 0.0.0.0 reaches 127.0.0.1');
});

test('UDP datagrams to 0.0.0.0 are dropped as blocked by a rule for 127.0.0.0/8', async (t) => {
  const local = await startUdpEchoServer('127.0.0.1');
  t.after(() => local.close());
  const gw = await startGateway(LOOPBACK_BLOCKED);
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  c.send({ host: '0.0.0.0', port: local.port }, 'to-any');
  assert.equal(await c.receive(300), undefined, 'no answer from this host');
  assert.deepEqual(local.peers, []);
  await c.close();
  const line = await gw.accessLog((l) => l['cmd'] === 'udp');
  assert.deepEqual((line?.['udp'] as { dropped?: unknown } | undefined)?.dropped, { blocked: 1 });
});

test('a name answered with 0.0.0.0 (a sinkholing resolver) meets the rule for 127.0.0.0/8', async (t) => {
  const local = await startEchoServer('127.0.0.1');
  t.after(() => local.close());
  const dns = await startDnsServer({ 'sink.test': { A: ['0.0.0.0'] } });
  t.after(() => dns.close());
  const gw = await startGateway({ ...LOOPBACK_BLOCKED, dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '1s' } });
  t.after(() => gw.close());
  assert.equal(await socks5Rep(gw.port, domain('sink.test'), local.port), 0x02);
  assert.deepEqual(local.peers, []);
});

test('socksgate route gives 0.0.0.0 and :: the rule traffic to them meets', async () => {
  const dir = await tempDir('route-unspecified');
  const path = join(dir, 'socksgate.yaml');
  await writeFile(path, 'rules:\n  - name: no-loopback\n    cidrs: [127.0.0.0/8, "::1/128"]\n    action: block\ndefault: direct\n');
  for (const host of ['0.0.0.0', '::', '[::]']) {
    const r = await runCli(['route', host, '80', '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^rule=no-loopback action=block /, host);
  }
  const udp = await runCli(['route', '0.0.0.0', '53', '--udp', '--config', path]);
  assert.match(udp.stdout, /^rule=no-loopback action=block /);
});

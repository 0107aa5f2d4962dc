import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { createResolver } from '../../src/dns/resolver.js';
import { ConfigError } from '../../src/errors.js';
import { buildOutbounds, closeOutbounds } from '../../src/outbound/build.js';
import { parseMemberUrl, redact } from '../../src/config/member-url.js';
import { parseMembersFile } from '../../src/outbound/members-file.js';
import { collectStats, isPoolOutbound } from '../../src/outbound/stats.js';
import type { Outbound, OutboundContext } from '../../src/outbound/types.js';
import { freePort, readAll, startDante, startDestination, startMicrosocks } from '../helpers/upstreams.js';

const log = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
const ctx = (): OutboundContext => ({ signal: new AbortController().signal, log, sessionKey: 'k' });

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-build-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('member URLs: password kept for the handshake, never in the display name', () => {
  const m = parseMemberUrl('socks5://us%40er:p%3Ass@[::1]:1081');
  assert.equal(m.display, 'socks5://us%40er@[::1]:1081');
  assert.deepEqual(m.config, { type: 'socks5', host: '::1', port: 1081, remote_dns: true, username: 'us@er', password: 'p:ss' });
  assert.equal(parseMemberUrl('socks5://10.0.0.1?remote_dns=false').config.remote_dns, false);
  assert.equal(parseMemberUrl('socks5://10.0.0.1').config.port, 1080);
  assert.throws(() => parseMemberUrl('ftp://u:secret@h:1'), (e: Error) => !e.message.includes('secret'));
  assert.equal(redact('socks5://u:secret@h:1'), 'socks5://u@h:1');
  assert.deepEqual(
    parseMembersFile('# proxies\n\nsocks5://a:1  # first\r\n  socks5://b:2\n', 'socks5').map((e) => ('member' in e ? [e.line, e.col, e.member.display] : e)),
    [
      [3, 1, 'socks5://a:1'],
      [4, 3, 'socks5://b:2'],
    ],
  );
});

test('a config builds direct, a chain and a pool of names, URLs and a members_file', async (t) => {
  const d = await startDestination();
  t.after(() => d.close());
  const corp = await startDante({ host: '127.0.0.31' });
  t.after(() => corp.close());
  const egress = await startMicrosocks({ host: '127.0.0.32', user: 'gw', pass: 'pw' });
  t.after(() => egress.close());
  const inline = await startMicrosocks({ host: '127.0.0.33', user: 'u', pass: 'secret' });
  t.after(() => inline.close());
  const listed = await startMicrosocks({ host: '127.0.0.34' });
  t.after(() => listed.close());
  const dir = await tempDir(t);
  await writeFile(join(dir, 'proxies.txt'), `# crawler egress\nsocks5://${listed.host}:${listed.port}\n\nsocks5://${listed.host}:${listed.port} # again\n`);
  const file = join(dir, 'socksgate.yaml');
  await writeFile(
    file,
    `listen: [{ host: 127.0.0.1, port: 1080 }]
upstreams:
  corp: { type: socks5, host: ${corp.host}, port: ${corp.port} }
  egress: { type: socks5, host: ${egress.host}, port: ${egress.port}, username: gw, password: pw, via: corp }
  crawl:
    type: pool
    members: [egress, "socks5://u:secret@${inline.host}:${inline.port}"]
    members_file: proxies.txt
    strategy: round-robin
default: direct
`,
  );
  const config = await loadConfig({ path: file });
  const map = await buildOutbounds(config, { dns, log });
  t.after(() => closeOutbounds(map));
  assert.deepEqual([...map.keys()].sort(), ['corp', 'crawl', 'direct', 'egress']);

  const chained = await map.get('egress')!.connect({ host: '127.0.0.1', port: d.port }, ctx());
  assert.equal(await readAll(chained.socket), 'hello 127.0.0.32\n');
  chained.release?.();

  const pool = map.get('crawl')!;
  assert.ok(isPoolOutbound(pool));
  const names = pool.stats().map((s) => s.name);
  assert.deepEqual(names, ['egress', `socks5://u@${inline.host}:${inline.port}`, `socks5://${listed.host}:${listed.port}`]);
  const seen: string[] = [];
  for (let i = 0; i < 3; i++) {
    const conn = await pool.connect({ host: '127.0.0.1', port: d.port }, ctx());
    seen.push(`${conn.member} ${(await readAll(conn.socket)).trim()}`);
    conn.release?.();
  }
  assert.deepEqual(seen, [`egress hello 127.0.0.32`, `${names[1]} hello 127.0.0.33`, `${names[2]} hello 127.0.0.34`]);

  const stats = collectStats(map);
  assert.equal(stats.members.length, 3);
  assert.deepEqual(
    stats.upstreams.map((s) => [s.name, s.attempts, s.active]).sort(),
    [['corp', 2, 0], ['egress', 2, 0]],
  );
});

test('BIND is a method an outbound has or lacks: direct and SOCKS upstreams, a chain or a pool that ends in one; not HTTP', async (t) => {
  // Building does no I/O: nothing listens at these addresses, and nothing needs to.
  const config = parseConfig(
    `upstreams:
  s5: { type: socks5, host: 127.0.0.1, port: 9 }
  s4: { type: socks4, host: 127.0.0.1, port: 9 }
  web: { type: http, host: 127.0.0.1, port: 9 }
  s5-via-web: { type: socks5, host: 127.0.0.1, port: 9, via: web }
  web-via-s5: { type: http, host: 127.0.0.1, port: 9, via: s5 }
  mixed: { type: pool, members: [web, s5] }
  webs: { type: pool, members: [web, web-via-s5] }
`,
    '/tmp/socksgate-test.yaml',
    {},
  );
  const map = await buildOutbounds(config, { dns, log });
  t.after(() => closeOutbounds(map));
  const canBind = (o: Outbound | undefined): boolean => o !== undefined && 'bind' in o && typeof o.bind === 'function';
  const names = [...map.keys()].sort();
  assert.deepEqual(
    names.filter((n) => canBind(map.get(n))),
    ['direct', 'mixed', 's4', 's5', 's5-via-web'],
  );
});

test('a bad members_file line is a config error naming the file and line', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'proxies.txt'), 'socks5://10.0.0.1:1080\nnot-a-url\n');
  const file = join(dir, 'socksgate.yaml');
  await writeFile(file, 'upstreams:\n  p: { type: pool, members_file: proxies.txt }\n');
  const config = await loadConfig({ path: file });
  await assert.rejects(buildOutbounds(config, { dns, log }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /proxies\.txt:2:1: expected host:port, host:port:user:pass or user:pass@host:port \(an IPv6 host in brackets: \[::1\]:1080\), got a line with no ":" \(not shown: it may be a password\)/);
    return true;
  });
});

test('a pool can be a hop: an upstream reached through whichever member the pool picks', async (t) => {
  const d = await startDestination();
  t.after(() => d.close());
  const hops = await Promise.all(['127.0.0.35', '127.0.0.36'].map((host) => startMicrosocks({ host })));
  for (const h of hops) t.after(() => h.close());
  const last = await startMicrosocks({ host: '127.0.0.37' });
  t.after(() => last.close());
  const dir = await tempDir(t);
  const file = join(dir, 'socksgate.yaml');
  const urls = hops.map((h) => `"socks5://${h.host}:${h.port}"`).join(', ');
  await writeFile(
    file,
    `upstreams:
  front: { type: pool, strategy: round-robin, members: [${urls}] }
  exit: { type: socks5, host: ${last.host}, port: ${last.port}, via: front }
`,
  );
  const map = await buildOutbounds(await loadConfig({ path: file }), { dns, log });
  t.after(() => closeOutbounds(map));
  const members: (string | undefined)[] = [];
  for (let i = 0; i < 2; i++) {
    const conn = await map.get('exit')!.connect({ host: '127.0.0.1', port: d.port }, ctx());
    assert.equal(await readAll(conn.socket), 'hello 127.0.0.37\n');
    members.push(conn.member);
    conn.release?.();
  }
  assert.deepEqual(members, hops.map((h) => `socks5://${h.host}:${h.port}`));
});

/** A live member on `liveHost`, a port on `deadHost` nothing listens on, a destination, and where the config goes. */
async function liveAndDead(t: { after(fn: () => Promise<void>): void }, liveHost: string, deadHost: string) {
  const live = await startMicrosocks({ host: liveHost });
  t.after(() => live.close());
  const d = await startDestination();
  t.after(() => d.close());
  const deadPort = await freePort(deadHost);
  const file = join(await tempDir(t), 'socksgate.yaml');
  return { live, d, deadPort, file };
}

test('a reload keeps what the pool learnt: an ejected member stays ejected in the new pool', async (t) => {
  const { live, d, deadPort, file } = await liveAndDead(t, '127.0.0.21', '127.0.0.22');
  const members = `["socks5://127.0.0.21:${live.port}", "socks5://127.0.0.22:${deadPort}"]`;
  await writeFile(file, `upstreams:\n  crawl: { type: pool, strategy: round-robin, members: ${members} }\n`);
  const config = await loadConfig({ path: file });
  const raw: string[] = [];
  const first = await buildOutbounds(config, { dns, log: pino({ level: 'info' }, { write: (line: string) => void raw.push(line) }) });
  t.after(() => closeOutbounds(first));
  const pool = first.get('crawl')!;
  // Round-robin meets the dead member every other request; retries hide it, faults count.
  for (let i = 0; i < 6; i++) {
    const conn = await pool.connect({ host: '127.0.0.1', port: d.port }, ctx());
    conn.socket.destroy();
    conn.release?.();
  }
  const health = (outbounds: ReadonlyMap<string, unknown>): Record<string, boolean> =>
    Object.fromEntries(collectStats(outbounds as Map<string, never>).members.map((m) => [m.name, m.healthy]));
  assert.deepEqual(health(first), { [`socks5://127.0.0.21:${live.port}`]: true, [`socks5://127.0.0.22:${deadPort}`]: false });
  // The pool's lines name it once: a key written twice is a document log stores such as Elasticsearch refuse.
  const ejected = raw.filter((line) => line.includes('"msg":"pool member ejected"'));
  assert.equal(ejected.length, 1);
  assert.equal(ejected[0]!.split('"pool":').length - 1, 1, ejected[0]);
  assert.match(ejected[0]!, /"pool":"crawl"/);

  const second = await buildOutbounds(config, { dns, log, previous: first });
  t.after(() => closeOutbounds(second));
  assert.deepEqual(health(second), health(first));
  const fresh = await buildOutbounds(config, { dns, log });
  t.after(() => closeOutbounds(fresh));
  assert.ok(Object.values(health(fresh)).every(Boolean), 'without a previous map every member starts healthy');
});

test('a reload that moves a named member to another proxy starts its record afresh; one that leaves it in place keeps it', async (t) => {
  const { live, d, deadPort, file } = await liveAndDead(t, '127.0.0.23', '127.0.0.24');
  const write = (host: string, port: number): Promise<void> =>
    writeFile(
      file,
      `upstreams:
  edge: { type: socks5, host: ${host}, port: ${port} }
  spare: { type: socks5, host: 127.0.0.23, port: ${live.port} }
  crawl: { type: pool, strategy: round-robin, ban_after: 1, members: [edge, spare] }
`,
    );
  const members = (outbounds: ReadonlyMap<string, unknown>): Record<string, { healthy: boolean; failures: number }> =>
    Object.fromEntries(collectStats(outbounds as Map<string, never>).members.map((m) => [m.name, { healthy: m.healthy, failures: m.failures }]));
  await write('127.0.0.24', deadPort);
  const first = await buildOutbounds(await loadConfig({ path: file }), { dns, log });
  t.after(() => closeOutbounds(first));
  for (let i = 0; i < 2; i++) {
    const conn = await first.get('crawl')!.connect({ host: '127.0.0.1', port: d.port }, ctx());
    conn.socket.destroy();
    conn.release?.();
  }
  assert.deepEqual(members(first).edge, { healthy: false, failures: 1 }, 'the dead proxy behind "edge" was not ejected');

  // The same name, the same proxy: the ejection is kept.
  const same = await buildOutbounds(await loadConfig({ path: file }), { dns, log, previous: first });
  t.after(() => closeOutbounds(same));
  assert.deepEqual(members(same).edge, { healthy: false, failures: 1 });
  // The same name, now a live proxy: nothing learnt of the dead one applies.
  await write('127.0.0.23', live.port);
  const moved = await buildOutbounds(await loadConfig({ path: file }), { dns, log, previous: same });
  t.after(() => closeOutbounds(moved));
  assert.deepEqual(members(moved).edge, { healthy: true, failures: 0 });
  assert.deepEqual(members(moved).spare, members(same).spare, 'the unchanged member lost its record');
  const conn = await moved.get('crawl')!.connect({ host: '127.0.0.1', port: d.port }, ctx());
  assert.match(await readAll(conn.socket), /hello/);
  conn.release?.();
});

test('a config that fails part-way leaves no health checks of the pools built before the failure', async (t) => {
  const probe = await startDestination();
  t.after(() => probe.close());
  const live = await startMicrosocks({ host: '127.0.0.23' });
  t.after(() => live.close());
  const dir = await tempDir(t);
  const file = join(dir, 'socksgate.yaml');
  await writeFile(
    file,
    'upstreams:\n' +
      `  checked: { type: pool, members: ["socks5://127.0.0.23:${live.port}"], health_check: { interval: 50ms, timeout: 1s, target: "127.0.0.1:${probe.port}" } }\n` +
      '  broken: { type: pool, members_file: missing.txt }\n',
  );
  const config = await loadConfig({ path: file });
  await assert.rejects(buildOutbounds(config, { dns, log }), ConfigError);
  const before = probe.peers.length;
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(probe.peers.length, before, 'no health check reached the target after the failed build');
});

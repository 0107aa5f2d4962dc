import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createResolver } from '../../src/dns/resolver.js';
import { GatewayError, Rep } from '../../src/errors.js';
import { createSocks5Outbound } from '../../src/outbound/socks5.js';
import type { ResolvedAddress } from '../../src/dns/types.js';
import type { OutboundContext } from '../../src/outbound/types.js';
import type { UpstreamStats } from '../../src/outbound/stats.js';
import { readAll, startDante, startDestination, startScriptedSocks } from '../helpers/upstreams.js';

const log = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
const resolved: ResolvedAddress[] = [
  { address: '127.0.0.1', family: 4 },
  { address: '127.0.0.2', family: 4 },
  { address: '::1', family: 6 },
  { address: '::2', family: 6 },
];
const ctx = (addresses = resolved): OutboundContext => ({ signal: new AbortController().signal, log, sessionKey: 'k', resolved: addresses });
// What the router resolved `dual.test` to in the Dante tests: IPv4 first, then ::1.
const dualLoopback: ResolvedAddress[] = [
  { address: '127.0.0.1', family: 4 },
  { address: '::1', family: 6 },
];
const local = (host: string, port: number) =>
  createSocks5Outbound('l', { type: 'socks5', host, port, remote_dns: false }, { dns, connectTimeout: 3_000 });

/** An upstream's counts, without its connect latency (a measure, not a count). */
const counts = ({ latencyMs: _latency, ...rest }: UpstreamStats): Omit<UpstreamStats, 'latencyMs'> => rest;

test('remote_dns false: Dante refused on IPv4 (0x05), the IPv6 address is tried and reached', async (t) => {
  const dest = await startDestination('::1'); // its port is closed on 127.0.0.1
  t.after(() => dest.close());
  const dante = await startDante({ host: '127.0.0.51', external: ['127.0.0.51', '::1'] });
  t.after(() => dante.close());
  const out = local(dante.host, dante.port);
  const conn = await out.connect({ host: 'dual.test', port: dest.port }, ctx(dualLoopback));
  assert.equal(await readAll(conn.socket), 'hello ::1\n');
  conn.release?.();
  assert.deepEqual(counts(out.stats()), { name: 'l', attempts: 1, failures: 0, active: 0, healthy: true });
});

test('remote_dns false: a block verdict from Dante (0x02) is final, the other family is not tried', async (t) => {
  const dest = await startDestination('::1');
  t.after(() => dest.close());
  const dante = await startDante({ host: '127.0.0.52', external: ['127.0.0.52', '::1'], block: ['127.0.0.1/32'] });
  t.after(() => dante.close());
  const err = await local(dante.host, dante.port).connect({ host: 'dual.test', port: dest.port }, ctx(dualLoopback)).catch((e: unknown) => e);
  assert.ok(err instanceof GatewayError, String(err));
  assert.equal(err.rep, Rep.NOT_ALLOWED);
  assert.deepEqual(dest.peers, [], 'the IPv6 address, which Dante would have reached, was not tried');
});

test('remote_dns false: 0x03 and 0x04 for the preferred family also try the other (scripted instrument: no route to lose on loopback)', async (t) => {
  for (const rep of [Rep.NETWORK_UNREACHABLE, Rep.HOST_UNREACHABLE]) {
    const up = await startScriptedSocks({ rep: (req) => (req.atyp === 1 ? rep : 0) });
    t.after(() => up.close());
    const out = local(up.host, up.port);
    const conn = await out.connect({ host: 'dual.test', port: 80 }, ctx());
    assert.equal(await readAll(conn.socket), 'ok');
    conn.release?.();
    assert.deepEqual(up.requests.map((r) => r.host), ['127.0.0.1', '0:0:0:0:0:0:0:1'], `after ${rep}`);
    assert.deepEqual(counts(out.stats()), { name: 'l', attempts: 1, failures: 0, active: 0, healthy: true });
  }
});

test('remote_dns false: one address per family at most (scripted instrument, to count the requests)', async (t) => {
  const down = await startScriptedSocks({ rep: Rep.HOST_UNREACHABLE });
  t.after(() => down.close());
  const err = await local(down.host, down.port).connect({ host: 'dual.test', port: 80 }, ctx()).then(
    () => assert.fail('connected'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof GatewayError);
  assert.equal(err.rep, Rep.HOST_UNREACHABLE);
  assert.equal(down.requests.length, 2, 'the first address of each family');
});

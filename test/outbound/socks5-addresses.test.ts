import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createResolver } from '../../src/dns/resolver.js';
import { GatewayError, Rep } from '../../src/errors.js';
import { createSocks5Outbound } from '../../src/outbound/socks5.js';
import type { ResolvedAddress } from '../../src/dns/types.js';
import type { OutboundContext } from '../../src/outbound/types.js';
import { readAll, startScriptedSocks } from '../helpers/upstreams.js';

const log = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
const resolved: ResolvedAddress[] = [
  { address: '127.0.0.1', family: 4 },
  { address: '127.0.0.2', family: 4 },
  { address: '::1', family: 6 },
  { address: '::2', family: 6 },
];
const ctx = (): OutboundContext => ({ signal: new AbortController().signal, log, sessionKey: 'k', resolved });
const local = (host: string, port: number) =>
  createSocks5Outbound('l', { type: 'socks5', host, port, remote_dns: false }, { dns, connectTimeout: 3_000 });

test('remote_dns false: when the upstream cannot reach the preferred family, the other family is tried', async (t) => {
  for (const rep of [Rep.NETWORK_UNREACHABLE, Rep.HOST_UNREACHABLE, Rep.CONNECTION_REFUSED]) {
    const up = await startScriptedSocks({ rep: (req) => (req.atyp === 1 ? rep : 0) });
    t.after(() => up.close());
    const out = local(up.host, up.port);
    const conn = await out.connect({ host: 'dual.test', port: 80 }, ctx());
    assert.equal(await readAll(conn.socket), 'ok');
    conn.release?.();
    assert.deepEqual(up.requests.map((r) => r.host), ['127.0.0.1', '0:0:0:0:0:0:0:1'], `after ${rep}`);
    assert.deepEqual(out.stats(), { name: 'l', attempts: 1, failures: 0, active: 0, healthy: true });
  }
});

test('remote_dns false: one address per family at most, and a verdict about the destination itself is final', async (t) => {
  const down = await startScriptedSocks({ rep: Rep.HOST_UNREACHABLE });
  t.after(() => down.close());
  const err = await local(down.host, down.port).connect({ host: 'dual.test', port: 80 }, ctx()).then(
    () => assert.fail('connected'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof GatewayError);
  assert.equal(err.rep, Rep.HOST_UNREACHABLE);
  assert.equal(down.requests.length, 2, 'the first address of each family');

  const ruled = await startScriptedSocks({ rep: Rep.NOT_ALLOWED });
  t.after(() => ruled.close());
  const e2 = await local(ruled.host, ruled.port).connect({ host: 'dual.test', port: 80 }, ctx()).catch((e: unknown) => e);
  assert.equal((e2 as GatewayError).rep, Rep.NOT_ALLOWED);
  assert.equal(ruled.requests.length, 1);
});

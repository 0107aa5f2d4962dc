// The gateway's own shortage of file descriptors (EMFILE, ENFILE) when it opens a socket to an
// upstream is no failure of that upstream: not in its attempts or failures, lone or pool member,
// as an attempt its client gave up is not.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createResolver } from '../../src/dns/resolver.js';
import type { TcpConnector } from '../../src/dns/types.js';
import { OutOfDescriptorsError } from '../../src/errors.js';
import { memberSpec } from '../../src/outbound/pool-member.js';
import { createPoolOutbound } from '../../src/outbound/pool.js';
import { createSocks5Outbound } from '../../src/outbound/socks5.js';
import type { OutboundContext } from '../../src/outbound/types.js';

const silent = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 10, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
const ctx = (): OutboundContext => ({ signal: new AbortController().signal, log: silent, sessionKey: 'k' });
const dest = { host: '127.0.0.1', port: 9 };

/** A connector in a process with no descriptor left: socket(2) fails with `code`. */
const noDescriptor = (code: 'EMFILE' | 'ENFILE'): TcpConnector => () =>
  Promise.reject(Object.assign(new Error(`connect ${code}`), { code, errno: -24, syscall: 'connect' }));

function upstream(name: string, code: 'EMFILE' | 'ENFILE') {
  return createSocks5Outbound(name, { type: 'socks5', host: '127.0.0.1', port: 1080, remote_dns: true }, { dns, connectTimeout: 2_000, connector: noDescriptor(code) });
}

for (const code of ['EMFILE', 'ENFILE'] as const) {
  test(`a connect that fails for want of a descriptor (${code}) counts as no attempt or failure of a lone upstream`, async () => {
    const out = upstream('lone', code);
    for (let i = 0; i < 3; i++) await assert.rejects(out.connect(dest, ctx()), OutOfDescriptorsError);
    const { attempts, failures, active, healthy } = out.stats();
    assert.deepEqual({ attempts, failures, active, healthy }, { attempts: 0, failures: 0, active: 0, healthy: true });
  });
}

test('a connect through a pool that fails for want of a descriptor counts as no attempt or failure of the member', async () => {
  const p = createPoolOutbound('crawl', { type: 'pool', members: [], members_scheme: 'socks5', ban_after: 3, strategy: 'round-robin' }, {
    members: [memberSpec(upstream('socks5://127.0.0.1:1080', 'EMFILE'))],
    log: silent,
  });
  for (let i = 0; i < 3; i++) await assert.rejects(p.connect(dest, ctx()), OutOfDescriptorsError);
  const [m] = p.stats();
  assert.deepEqual({ attempts: m?.attempts, failures: m?.failures, healthy: m?.healthy }, { attempts: 0, failures: 0, healthy: true });
});

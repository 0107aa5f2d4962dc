import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { clampTtl } from '../../src/dns/cache.js';
import { createResolver } from '../../src/dns/resolver.js';
import { ConfigError, NameNotResolvedError, Rep, toRep } from '../../src/errors.js';
import { resolverWithServer, resolverWithServers, startDnsServer } from '../helpers/dns-server.js';

const setup = resolverWithServer;

async function rejectsWith04(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof NameNotResolvedError, String(err));
    assert.equal(toRep(err), Rep.HOST_UNREACHABLE);
    return true;
  });
}

test('50 lookups within the TTL send one query per type', async (t) => {
  const { server, dns } = await setup(t, { 'www.test': { A: ['192.0.2.1'], AAAA: ['2001:db8::1'], ttl: 300 } });
  for (let i = 0; i < 50; i++) {
    assert.deepEqual(await dns.lookup('www.test'), [
      { address: '192.0.2.1', family: 4 },
      { address: '2001:db8::1', family: 6 },
    ]);
  }
  assert.equal(server.queries('www.test', 'A'), 1);
  assert.equal(server.queries('www.test', 'AAAA'), 1);
  const s = dns.stats();
  assert.equal(s.misses, 1);
  assert.equal(s.hits, 49);
  assert.equal(s.queries, 2);
});

test('an answer is asked for again once its TTL has passed', async (t) => {
  const { server, dns } = await setup(t, { 'short.test': { A: ['192.0.2.2'], ttl: 1 } });
  await dns.lookup('short.test');
  await dns.lookup('short.test');
  assert.equal(server.queries('short.test', 'A'), 1);
  await sleep(1_200);
  await dns.lookup('short.test');
  assert.equal(server.queries('short.test', 'A'), 2);
});

test('max_ttl shortens a long TTL and min_ttl lengthens a zero one', async (t) => {
  const { server, dns } = await setup(
    t,
    { 'long.test': { A: ['192.0.2.3'], ttl: 3600 }, 'zero.test': { A: ['192.0.2.4'], ttl: 0 } },
    { max_ttl: 200, min_ttl: 100 },
  );
  await dns.lookup('long.test');
  await dns.lookup('zero.test');
  await dns.lookup('zero.test');
  assert.equal(server.queries('zero.test', 'A'), 1);
  await sleep(300);
  await dns.lookup('long.test');
  assert.equal(server.queries('long.test', 'A'), 2);
});

test('a zero TTL without min_ttl is not cached', async (t) => {
  const { server, dns } = await setup(t, { 'zero.test': { A: ['192.0.2.4'], ttl: 0 } });
  await dns.lookup('zero.test');
  await dns.lookup('zero.test');
  assert.equal(server.queries('zero.test', 'A'), 2);
});

test('a TTL with its top bit set is read as 0 (RFC 2181 §8): not cached for 68 years', async (t) => {
  const { server, dns } = await setup(t, { 'odd.test': { A: ['192.0.2.6'], ttl: 2 ** 31 }, 'max.test': { A: ['192.0.2.7'], ttl: 2 ** 32 - 1 }, 'top.test': { A: ['192.0.2.8'], ttl: 2 ** 31 - 1 } });
  for (const name of ['odd.test', 'max.test', 'top.test']) {
    await dns.lookup(name);
    await dns.lookup(name);
  }
  assert.equal(server.queries('odd.test', 'A'), 2);
  assert.equal(server.queries('max.test', 'A'), 2);
  // The largest TTL a server may give is honoured.
  assert.equal(server.queries('top.test', 'A'), 1);
});

test('100 concurrent lookups of a new name share one query', async (t) => {
  const { server, dns } = await setup(t, { 'busy.test': { A: ['192.0.2.5'] } });
  const all = await Promise.all(Array.from({ length: 100 }, () => dns.lookup('busy.test')));
  for (const r of all) assert.deepEqual(r, [{ address: '192.0.2.5', family: 4 }]);
  assert.notEqual(all[0], all[1], 'each caller gets its own array');
  assert.equal(server.queries('busy.test', 'A'), 1);
  assert.equal(server.queries('busy.test', 'AAAA'), 1);
  assert.equal(dns.stats().inflightWaits, 99);
  assert.equal(dns.stats().misses, 1);
});

test('NXDOMAIN is cached for negative_ttl, then asked again', async (t) => {
  const { server, dns } = await setup(t, { 'gone.test': { nxdomain: true } }, { negative_ttl: 300 });
  await rejectsWith04(dns.lookup('gone.test'));
  await rejectsWith04(dns.lookup('gone.test'));
  assert.equal(server.queries('gone.test', 'A'), 1);
  assert.equal(dns.stats().negativeHits, 1);
  await sleep(400);
  await rejectsWith04(dns.lookup('gone.test'));
  assert.equal(server.queries('gone.test', 'A'), 2);
});

test('a name with no address records is cached as negative', async (t) => {
  const { server, dns } = await setup(t, { 'empty.test': {} });
  await rejectsWith04(dns.lookup('empty.test'));
  await rejectsWith04(dns.lookup('empty.test'));
  assert.equal(server.queries('empty.test'), 2);
  assert.equal(dns.stats().negativeHits, 1);
});

test('a server that never answers gives 0x04 within the timeout, and is not cached', { timeout: 10_000 }, async (t) => {
  const { server, dns } = await setup(t, { 'mute.test': { silent: true } }, { timeout: 300 });
  await rejectsWith04(dns.lookup('mute.test'));
  // One lookup may ask again within its timeout (c-ares' shortest try is 250 ms of the 300):
  // what tells "not cached" is that the second lookup asks the server anew.
  const first = server.queries('mute.test', 'A');
  assert.ok(first >= 1, 'the server was asked');
  await rejectsWith04(dns.lookup('mute.test'));
  assert.ok(server.queries('mute.test', 'A') > first, 'the second lookup asked the server again');
  assert.equal(dns.stats().negativeHits, 0);
  // Once the server answers, the name resolves: nothing negative was left behind.
  server.set('mute.test', { A: ['192.0.2.6'] });
  assert.deepEqual(await dns.lookup('mute.test'), [{ address: '192.0.2.6', family: 4 }]);
});

/** How long `lookup` took to fail with 0x04, in ms. */
async function failsAfter(lookup: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await rejectsWith04(lookup());
  return performance.now() - started;
}

test('dns.timeout bounds a lookup that no server answers: it fails after about the timeout, with one server or two, one that answered before or not', { timeout: 30_000 }, async (t) => {
  // A behaviour bound, not a speed test: never before 0.8x the timeout, never past 1.5x + 1 s.
  const silent = { 'mute.test': { silent: true } };
  const answering = { ...silent, 'a.test': { A: ['192.0.2.31'] }, 'b.test': { A: ['192.0.2.32'] } };
  const cases = [
    { what: 'one server, 3s', records: [silent], timeout: 3_000 },
    { what: 'two servers, 3s', records: [silent, silent], timeout: 3_000 },
    // c-ares cuts a try to 5x the server's recent latency (250 ms at least) once it has answered.
    { what: 'one server that has answered, 3s', records: [answering], timeout: 3_000, warm: ['a.test', 'b.test'] },
    { what: 'one server, 500ms', records: [silent], timeout: 500 },
    { what: 'two servers, 500ms', records: [silent, silent], timeout: 500 },
  ];
  const outcomes = await Promise.all(
    cases.map(async (c) => {
      const { dns } = await resolverWithServers(t, c.records, { timeout: c.timeout });
      for (const name of c.warm ?? []) await dns.lookup(name);
      return { ...c, ms: await failsAfter(() => dns.lookup('mute.test')) };
    }),
  );
  const report = outcomes.map((o) => `${o.what}: ${Math.round(o.ms)} ms`).join('; ');
  for (const o of outcomes) {
    assert.ok(o.ms >= 0.8 * o.timeout && o.ms <= 1.5 * o.timeout + 1_000, report);
  }
});

test('with two servers, a silent first one leaves the second its share: the answer comes within the timeout', { timeout: 20_000 }, async (t) => {
  const {
    servers: [first, second],
    dns,
  } = await resolverWithServers(t, [{ 'x.test': { silent: true } }, { 'x.test': { A: ['192.0.2.33'] } }], { timeout: 2_000 });
  const started = performance.now();
  assert.deepEqual(await dns.lookup('x.test'), [{ address: '192.0.2.33', family: 4 }]);
  const ms = performance.now() - started;
  assert.ok(ms <= 2_000, `answered after ${Math.round(ms)} ms`);
  assert.ok(first.queries('x.test', 'A') >= 1 && second.queries('x.test', 'A') >= 1);
});

test('a server that has answered quickly is still waited for when one answer takes longer than a second, within dns.timeout', { timeout: 20_000 }, async (t) => {
  const records = { 'far.test': { A: ['192.0.2.34'], delay: 1_500 } } as Record<string, { A: string[]; delay?: number }>;
  for (let i = 0; i < 4; i++) records[`near${i}.test`] = { A: [`192.0.2.${40 + i}`] };
  const { server, dns } = await setup(t, records, { timeout: 5_000 });
  // Answered at once: c-ares now cuts a try to 5x this server's latency (250 ms at least).
  for (let i = 0; i < 4; i++) await dns.lookup(`near${i}.test`);
  assert.deepEqual(await dns.lookup('far.test'), [{ address: '192.0.2.34', family: 4 }]);
  assert.ok(server.queries('far.test', 'A') >= 1);
});

test('closing the resolver ends a lookup that is asking again after a timed-out round', { timeout: 20_000 }, async (t) => {
  const records = { 'mute.test': { silent: true } } as Record<string, { A?: string[]; silent?: boolean }>;
  for (let i = 0; i < 4; i++) records[`near${i}.test`] = { A: [`192.0.2.${40 + i}`] };
  const { server, dns } = await setup(t, records, { timeout: 5_000 });
  for (let i = 0; i < 4; i++) await dns.lookup(`near${i}.test`);
  const lookup = dns.lookup('mute.test');
  lookup.catch(() => {});
  // The second A question is the second round's.
  for (let waited = 0; waited < 5_000 && server.queries('mute.test', 'A') < 2; waited += 20) await sleep(20);
  assert.ok(server.queries('mute.test', 'A') >= 2);
  dns.close();
  await assert.rejects(lookup, /lookup cancelled/);
});

test('SERVFAIL gives 0x04 and is not cached', async (t) => {
  const { server, dns } = await setup(t, { 'broken.test': { servfail: true } });
  await rejectsWith04(dns.lookup('broken.test'));
  await rejectsWith04(dns.lookup('broken.test'));
  assert.equal(server.queries('broken.test', 'A'), 2);
  assert.equal(dns.stats().negativeHits, 0);
});

test('a SERVFAIL or REFUSED from one server is asked of the next; when every server fails, 0x04', { timeout: 20_000 }, async (t) => {
  const {
    servers: [first, second],
    dns,
  } = await resolverWithServers(t, [
    { 'sf.test': { servfail: true }, 'rf.test': { refused: true }, 'all.test': { servfail: true } },
    { 'sf.test': { A: ['192.0.2.21'] }, 'rf.test': { A: ['192.0.2.22'], AAAA: ['2001:db8::22'] }, 'all.test': { refused: true } },
  ]);
  assert.deepEqual(await dns.lookup('sf.test'), [{ address: '192.0.2.21', family: 4 }]);
  assert.deepEqual(await dns.lookup('rf.test'), [
    { address: '192.0.2.22', family: 4 },
    { address: '2001:db8::22', family: 6 },
  ]);
  assert.ok(second.queries('sf.test', 'A') >= 1 && second.queries('rf.test', 'AAAA') >= 1);
  // The answers the second server gave are cached as any other.
  const asked = first.queries('sf.test') + second.queries('sf.test');
  await dns.lookup('sf.test');
  assert.equal(first.queries('sf.test') + second.queries('sf.test'), asked);
  // Nobody answers: a failure, not cached.
  await rejectsWith04(dns.lookup('all.test'));
  assert.ok(first.queries('all.test', 'A') >= 1 && second.queries('all.test', 'A') >= 1);
  assert.equal(dns.stats().negativeHits, 0);
  // Every question sent, the servers asked again included, is counted.
  const received = ['sf.test', 'rf.test', 'all.test'].reduce((n, name) => n + first.queries(name) + second.queries(name), 0);
  assert.equal(dns.stats().queries, received);
});

test('a FORMERR from one server is asked of the next; from the only one, 0x04, not cached', { timeout: 20_000 }, async (t) => {
  const {
    servers: [first],
    dns,
  } = await resolverWithServers(t, [{ 'fe.test': { formerr: true } }, { 'fe.test': { A: ['192.0.2.28'] } }]);
  assert.deepEqual(await dns.lookup('fe.test'), [{ address: '192.0.2.28', family: 4 }]);
  assert.ok(first.queries('fe.test', 'A') >= 1);
  const { server, dns: alone } = await setup(t, { 'fe.test': { formerr: true } });
  await assert.rejects(alone.lookup('fe.test'), (err: unknown) => err instanceof NameNotResolvedError && /FORMERR/.test(err.message));
  await rejectsWith04(alone.lookup('fe.test'));
  assert.equal(server.queries('fe.test', 'A'), 2);
});

test('a SERVFAIL for one family while the other answers is asked of the next server: the whole answer, not the half', { timeout: 20_000 }, async (t) => {
  const {
    servers: [, second],
    dns,
  } = await resolverWithServers(t, [
    { 'half.test': { A: ['192.0.2.26'], AAAA: ['2001:db8::26'], servfail: ['A'] } },
    { 'half.test': { A: ['192.0.2.26'], AAAA: ['2001:db8::26'] } },
  ]);
  assert.deepEqual(await dns.lookup('half.test'), [
    { address: '192.0.2.26', family: 4 },
    { address: '2001:db8::26', family: 6 },
  ]);
  assert.ok(second.queries('half.test', 'A') >= 1);
  // With no other server, the half that answered is used (kept no longer than negative_ttl).
  const { dns: alone } = await setup(t, { 'half.test': { A: ['192.0.2.26'], AAAA: ['2001:db8::26'], servfail: ['A'] } });
  assert.deepEqual(await alone.lookup('half.test'), [{ address: '2001:db8::26', family: 6 }]);
});

test('a truncated answer from a server that takes no TCP is asked of the next server', { timeout: 20_000 }, async (t) => {
  // The test server answers UDP only: the TCP retry a TC bit calls for is refused.
  const {
    servers: [first],
    dns,
  } = await resolverWithServers(t, [{ 'big.test': { truncated: true } }, { 'big.test': { A: ['192.0.2.23'] } }]);
  assert.deepEqual(await dns.lookup('big.test'), [{ address: '192.0.2.23', family: 4 }]);
  assert.ok(first.queries('big.test', 'A') >= 1);
});

test('a truncated answer from the only server, with no TCP to retry on, gives 0x04 and is not cached', async (t) => {
  const { server, dns } = await setup(t, { 'big.test': { truncated: true } });
  await rejectsWith04(dns.lookup('big.test'));
  await rejectsWith04(dns.lookup('big.test'));
  assert.equal(server.queries('big.test', 'A'), 2);
  assert.equal(dns.stats().negativeHits, 0);
});

test('REFUSED from the only server gives 0x04 and is not cached', async (t) => {
  const { server, dns } = await setup(t, { 'no.test': { refused: true } });
  await rejectsWith04(dns.lookup('no.test'));
  await rejectsWith04(dns.lookup('no.test'));
  assert.equal(server.queries('no.test', 'A'), 2);
  assert.equal(dns.stats().negativeHits, 0);
});

test('a malformed datagram from the server before its answer does not fail the lookup: the question is asked again', async (t) => {
  const { server, dns } = await setup(t, { 'mangled.test': { A: ['192.0.2.24'], malformed: 'first' } });
  assert.deepEqual(await dns.lookup('mangled.test'), [{ address: '192.0.2.24', family: 4 }]);
  assert.equal(server.queries('mangled.test', 'A'), 2);
});

test('a server that answers only malformed datagrams is passed over for the next; alone, it gives 0x04, not cached', { timeout: 20_000 }, async (t) => {
  const {
    servers: [first],
    dns,
  } = await resolverWithServers(t, [{ 'mangled.test': { malformed: 'always' } }, { 'mangled.test': { A: ['192.0.2.25'] } }]);
  assert.deepEqual(await dns.lookup('mangled.test'), [{ address: '192.0.2.25', family: 4 }]);
  assert.ok(first.queries('mangled.test', 'A') >= 1);
  const { server, dns: alone } = await setup(t, { 'mangled.test': { malformed: 'always' } });
  await assert.rejects(alone.lookup('mangled.test'), (err: unknown) => {
    assert.ok(err instanceof NameNotResolvedError && toRep(err) === Rep.HOST_UNREACHABLE, String(err));
    assert.match(err.message, /malformed answer/);
    return true;
  });
  const asked = server.queries('mangled.test', 'A');
  await rejectsWith04(alone.lookup('mangled.test'));
  assert.ok(server.queries('mangled.test', 'A') > asked, 'a failure is not cached');
  assert.equal(alone.stats().negativeHits, 0);
});

test('hosts and IP literals answer without any query', async (t) => {
  const { server, dns } = await setup(t, {}, { hosts: { 'printer.corp': '10.8.3.3', 'v6.corp': '2001:db8::9' } });
  assert.deepEqual(await dns.lookup('printer.corp'), [{ address: '10.8.3.3', family: 4 }]);
  assert.deepEqual(await dns.lookup('PRINTER.Corp.'), [{ address: '10.8.3.3', family: 4 }]);
  assert.deepEqual(await dns.lookup('v6.corp'), [{ address: '2001:db8::9', family: 6 }]);
  assert.deepEqual(await dns.lookup('203.0.113.9'), [{ address: '203.0.113.9', family: 4 }]);
  assert.deepEqual(await dns.lookup('::1'), [{ address: '::1', family: 6 }]);
  assert.equal(server.queries('printer.corp'), 0);
  assert.equal(dns.stats().queries, 0);
});

test('a hosts name written in Unicode answers the A-label (xn--) clients send', async (t) => {
  const { server, dns } = await setup(t, {}, { hosts: { 'Bücher.Test': '10.8.3.4', 'full.xn--strae-oqa.test': '10.8.3.5' } });
  assert.deepEqual(await dns.lookup('xn--bcher-kva.test'), [{ address: '10.8.3.4', family: 4 }]);
  assert.deepEqual(await dns.lookup('XN--BCHER-KVA.test.'), [{ address: '10.8.3.4', family: 4 }]);
  assert.deepEqual(await dns.lookup('full.xn--strae-oqa.test'), [{ address: '10.8.3.5', family: 4 }]);
  assert.equal(dns.stats().queries, 0);
  assert.equal(server.queries('xn--bcher-kva.test'), 0);
});

test('names are case-insensitive and a trailing dot is ignored', async (t) => {
  const { server, dns } = await setup(t, { 'mixed.test': { A: ['192.0.2.7'] } });
  await dns.lookup('Mixed.TEST.');
  await dns.lookup('mixed.test');
  assert.equal(server.queries('mixed.test', 'A'), 1);
});

test('LRU eviction at cache_size: counted, and the evicted name is asked again', async (t) => {
  const { server, dns } = await setup(
    t,
    { 'a.test': { A: ['192.0.2.11'] }, 'b.test': { A: ['192.0.2.12'] }, 'c.test': { A: ['192.0.2.13'] } },
    { cache_size: 2 },
  );
  await dns.lookup('a.test');
  await dns.lookup('b.test');
  assert.equal(dns.stats().evictions, 0);
  await dns.lookup('c.test'); // a.test is the least recently used
  assert.equal(dns.stats().evictions, 1);
  await dns.lookup('c.test');
  assert.equal(server.queries('c.test', 'A'), 1);
  await dns.lookup('a.test');
  assert.equal(server.queries('a.test', 'A'), 2);
  assert.equal(dns.stats().evictions, 2);
});

test('a CNAME chain is followed and cached no longer than its shortest TTL', async (t) => {
  const { server, dns } = await setup(t, {
    'www.test': { cname: 'cdn.test', cnameTtl: 1 },
    'cdn.test': { A: ['192.0.2.30'], AAAA: ['2001:db8::30'], ttl: 300 },
  });
  const want = [
    { address: '192.0.2.30', family: 4 },
    { address: '2001:db8::30', family: 6 },
  ];
  assert.deepEqual(await dns.lookup('www.test'), want);
  assert.deepEqual(await dns.lookup('www.test'), want);
  assert.equal(server.queries('www.test', 'A'), 1);
  await sleep(1_200);
  assert.deepEqual(await dns.lookup('www.test'), want);
  assert.equal(server.queries('www.test', 'A'), 2);
});

test('an IPv6 server given as [::1]:PORT is asked', async (t) => {
  const server = await startDnsServer({ 'six.test': { A: ['192.0.2.31'] } }, '::1');
  t.after(() => server.close());
  const dns = createResolver({ servers: [`[::1]:${server.port}`], cache_size: 100, negative_ttl: 30_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
  t.after(() => dns.close());
  assert.deepEqual(await dns.lookup('six.test'), [{ address: '192.0.2.31', family: 4 }]);
  assert.equal(server.queries('six.test', 'A'), 1);
});

test('the preferred family comes first', async (t) => {
  const records = { 'dual.test': { A: ['192.0.2.21', '192.0.2.22'], AAAA: ['2001:db8::21'] } };
  const v6 = await setup(t, records, { prefer: 'ipv6' });
  assert.deepEqual(await v6.dns.lookup('dual.test'), [
    { address: '2001:db8::21', family: 6 },
    { address: '192.0.2.21', family: 4 },
    { address: '192.0.2.22', family: 4 },
  ]);
  const v4 = await setup(t, records);
  assert.deepEqual(
    (await v4.dns.lookup('dual.test')).map((a) => a.family),
    [4, 4, 6],
  );
});

test('an AAAA-only name resolves to its IPv6 address alone', async (t) => {
  const { dns } = await setup(t, { 'six.test': { AAAA: ['::1'] } });
  assert.deepEqual(await dns.lookup('six.test'), [{ address: '::1', family: 6 }]);
});

test('a caller mutating its answer does not change the cache', async (t) => {
  const { dns } = await setup(t, { 'keep.test': { A: ['192.0.2.31'] } });
  const first = await dns.lookup('keep.test');
  first.pop();
  assert.deepEqual(await dns.lookup('keep.test'), [{ address: '192.0.2.31', family: 4 }]);
});

// The system path asks getaddrinfo, which only /etc/hosts and a name glibc refuses to put on
// the wire keep off the machine's DNS server: a 70-octet label breaks RFC 1035 §2.3.4 (63 at
// most), so the lookup fails locally, without a packet (checked with strace).
const UNSENDABLE = `${'a'.repeat(70)}.test`;

test('without servers the system resolver answers localhost and refuses a name that cannot exist', { timeout: 10_000 }, async (t) => {
  const dns = createResolver({ cache_size: 10, negative_ttl: 1_000, timeout: 3_000, prefer: 'ipv4', hosts: {} });
  t.after(() => dns.close());
  const local = await dns.lookup('localhost');
  assert.ok(local.length > 0);
  for (const a of local) assert.match(a.address, /^(127\.|::1$)/);
  await rejectsWith04(dns.lookup(UNSENDABLE));
  await dns.lookup('localhost');
  assert.equal(dns.stats().hits, 1);
});

test('a name under .invalid gets 0x04 without a query, even from a server that answers every name (RFC 6761 §6.4); a hosts entry still answers it', async (t) => {
  // A server that answers names that do not exist, as resolvers that rewrite NXDOMAIN do.
  const { server, dns } = await setup(t, { 'probe.invalid': { A: ['192.0.2.50'] }, invalid: { A: ['192.0.2.51'] } }, { hosts: { 'lab.invalid': '127.0.0.1' } });
  for (const name of ['probe.invalid', 'PROBE.Invalid.', 'invalid']) await rejectsWith04(dns.lookup(name));
  assert.equal(server.queries('probe.invalid') + server.queries('invalid'), 0);
  assert.deepEqual(await dns.lookup('lab.invalid'), [{ address: '127.0.0.1', family: 4 }]);
  // Without servers, getaddrinfo is not asked either: nothing goes to the machine's name server.
  const system = createResolver({ cache_size: 10, negative_ttl: 1_000, timeout: 3_000, prefer: 'ipv4', hosts: {} });
  t.after(() => system.close());
  await rejectsWith04(system.lookup('nowhere.invalid'));
  assert.equal(system.stats().queries, 0);
});

test('a host that is not an IP address in `hosts` is a config error', () => {
  assert.throws(
    () => createResolver({ cache_size: 1, negative_ttl: 1, timeout: 1, prefer: 'ipv4', hosts: { x: 'not-an-ip' } }),
    /dns\.hosts\.x/,
  );
});

test('a hosts name no request can look up is a config error, not an answer for names ending in a number', () => {
  for (const name of ['1.2.3', '10', '127.0.0.1', 'bad..name']) {
    assert.throws(
      () => createResolver({ cache_size: 1, negative_ttl: 1, timeout: 1, prefer: 'ipv4', hosts: { [name]: '127.0.0.1' } }),
      (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.startsWith(`dns.hosts.${name}: `)),
      name,
    );
  }
});

test('clampTtl converts seconds to ms within the bounds', () => {
  assert.equal(clampTtl(30, {}), 30_000);
  assert.equal(clampTtl(0, {}), 0);
  assert.equal(clampTtl(0, { min_ttl: 1_000 }), 1_000);
  assert.equal(clampTtl(86_400, { max_ttl: 3_600_000 }), 3_600_000);
});

test('a half answer (AAAA timed out) is kept only for negative_ttl', { timeout: 10_000 }, async (t) => {
  const { server, dns } = await setup(
    t,
    { 'half.test': { A: ['192.0.2.41'], ttl: 3600, silent: ['AAAA'] } },
    { timeout: 200, negative_ttl: 300 },
  );
  assert.deepEqual(await dns.lookup('half.test'), [{ address: '192.0.2.41', family: 4 }]);
  await dns.lookup('half.test');
  assert.equal(server.queries('half.test', 'A'), 1);
  await sleep(400);
  await dns.lookup('half.test');
  assert.equal(server.queries('half.test', 'A'), 2);
});

test('a failed lookup is logged; a hit is not', async (t) => {
  const server = await startDnsServer({ 'broken.test': { servfail: true }, 'ok.test': { A: ['192.0.2.51'] } });
  t.after(() => server.close());
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const dns = createResolver(
    { servers: [`${server.host}:${server.port}`], cache_size: 10, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} },
    { log: pino({ level: 'info' }, sink) },
  );
  t.after(() => dns.close());
  await dns.lookup('ok.test');
  await dns.lookup('ok.test');
  await rejectsWith04(dns.lookup('broken.test'));
  assert.equal(lines.length, 1);
  const line = JSON.parse(lines[0]!) as { level: number; host: string; err: string };
  assert.equal(line.host, 'broken.test');
  assert.match(line.err, /SERVFAIL/);
});

test('names that getaddrinfo would read as IPv4 shorthand are refused without a query', async () => {
  const dns = createResolver({ cache_size: 10, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
  for (const name of ['127.1', '0x7f000001', '2130706433', '127.0.0.1.', '017700000001', 'a.0x1']) {
    await assert.rejects(dns.lookup(name), (e: unknown) => toRep(e) === Rep.HOST_UNREACHABLE, name);
  }
  assert.equal(dns.stats().queries, 0);
  assert.deepEqual(await dns.lookup('127.0.0.1'), [{ address: '127.0.0.1', family: 4 }]);
  assert.ok((await dns.lookup('localhost')).length > 0, 'ordinary names still resolve');
  dns.close();
});

test('a large cache_size costs memory only for the names cached: start-up allocates nothing per slot', async (t) => {
  // 2^32 slots could not even be allocated up front ("Invalid array length"); 10^8 took GBs.
  const { server, dns } = await setup(t, { 'big.test': { A: ['192.0.2.31'] } }, { cache_size: 2 ** 32 });
  const heap = process.memoryUsage().heapUsed;
  const more = createResolver({ cache_size: 20_000_000, negative_ttl: 30_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
  t.after(() => more.close());
  assert.ok(process.memoryUsage().heapUsed - heap < 20_000_000, 'no slot array sized by cache_size');
  await dns.lookup('big.test');
  await dns.lookup('big.test');
  assert.equal(server.queries('big.test', 'A'), 1);
});

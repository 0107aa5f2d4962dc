// Pool choices without sockets: weighted rendezvous shares, lifetimes, tag filters, fastest,
// and the member username templates every proxy outbound sends.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { PoolConfig, PoolStrategy } from '../../src/config/types.js';
import { credentialsFor, placeholdersOf } from '../../src/outbound/credentials.js';
import { createPoolOutbound } from '../../src/outbound/pool.js';
import { NoMemberMatchesError } from '../../src/outbound/pool-errors.js';
import { createStrategy, FASTEST_STALE_MS, fnv1a32, memberHash, sessionPeriod, type Pickable } from '../../src/outbound/strategies.js';
import type { MemberSpec, OutboundContext } from '../../src/outbound/types.js';

const silent = pino({ level: 'silent' });
const pool = (strategy: PoolStrategy, extra: Partial<PoolConfig> = {}): PoolConfig => ({ type: 'pool', members: [], members_scheme: 'socks5', ban_after: 3, strategy, ...extra });
const spec = (name: string, weight = 1, tags: Record<string, string> = {}, placeholders?: string[]): MemberSpec => ({
  outbound: { name, connect: () => Promise.reject(new Error('unused')), close: async () => {} },
  endpoint: name,
  weight,
  tags,
  ...(placeholders ? { placeholders } : {}),
});
const pickable = (name: string, weight = 1, latency?: number): Pickable & { latency: number | undefined; attempts: number; triedAt: number; measuredAt: number } => ({ name, hash: memberHash(name), weight, latency, attempts: 0, triedAt: 0, measuredAt: 0, load: () => 0 });

test('sticky: every member wins keys in proportion to its weight', () => {
  const members = [pickable('a', 1), pickable('b', 2), pickable('c', 5), pickable('d', 2)];
  const sticky = createStrategy('sticky', members);
  const wins = new Map<string, number>();
  const n = 40_000;
  for (let k = 0; k < n; k++) {
    const m = sticky.choose(() => true, `key-${k}`, undefined, 0, true)!;
    wins.set(m.name, (wins.get(m.name) ?? 0) + 1);
  }
  for (const m of members) {
    const p = m.weight / 10;
    const sd = Math.sqrt(n * p * (1 - p));
    const got = wins.get(m.name) ?? 0;
    assert.ok(Math.abs(got - n * p) < 6 * sd, `${m.name} (weight ${m.weight}): ${got} of ${n}`);
  }
});

test('sticky: an unusable member gives its keys to others; the rest stay put', () => {
  const members = Array.from({ length: 8 }, (_, i) => pickable(`m${i}`, 1 + (i % 3)));
  const sticky = createStrategy('sticky', members);
  for (let k = 0; k < 2_000; k++) {
    const key = `k${k}`;
    const first = sticky.choose(() => true, key, undefined, 0, false)!;
    const without = sticky.choose((m) => m !== members[2], key, undefined, 0, false)!;
    if (first !== members[2]) assert.equal(without, first, key);
    else assert.notEqual(without, members[2]);
  }
});

/** Chi-square of sticky's choices for `n` keys over `size` equal members, and its degrees of freedom. */
function stickyChiSquare(size: number, n: number, lifetime: number | undefined): { chi2: number; df: number } {
  const members = Array.from({ length: size }, (_, i) => pickable(`socks5://10.0.${i}.1:1080`));
  const sticky = createStrategy('sticky', members);
  const wins = new Map<Pickable, number>();
  for (let k = 0; k < n; k++) {
    const m = sticky.choose(() => true, `session-${k}`, lifetime, 1_764_700_000_000, false)!;
    wins.set(m, (wins.get(m) ?? 0) + 1);
  }
  const expected = n / size;
  return { chi2: members.reduce((sum, m) => sum + ((wins.get(m) ?? 0) - expected) ** 2 / expected, 0), df: size - 1 };
}

test('sticky: shares of keys per member pass a chi-square test (100 members, 2 000 000 keys; with a lifetime, 1 000 000)', () => {
  // The per-pair draw is a cheaper mix than a full hash; a weaker one (a single multiply)
  // gives chi-square ~230 here, an even one ~100 (df 99). A lifetime adds the key's split.
  for (const [n, lifetime] of [[2_000_000, undefined], [1_000_000, 60_000]] as const) {
    const { chi2, df } = stickyChiSquare(100, n, lifetime);
    assert.ok(chi2 < df + 6 * Math.sqrt(2 * df), `lifetime ${lifetime}: chi-square ${chi2.toFixed(0)} with ${df} degrees of freedom`);
  }
});

test('sticky: removing a member moves only the keys it held, with and without a lifetime', () => {
  const members = Array.from({ length: 1_000 }, (_, i) => pickable(`socks5://10.${i >> 8}.${i & 255}.1:1080`, 1 + (i % 3)));
  const removed = new Set([members[7]!, members[500]!, members[998]!]);
  const full = createStrategy('sticky', members);
  const less = createStrategy('sticky', members.filter((m) => !removed.has(m)));
  let moved = 0;
  for (const lifetime of [undefined, 60_000]) {
    for (let k = 0; k < 5_000; k++) {
      const key = `k${k}`;
      const at = 1_764_700_000_000 + k * 977;
      const before = full.choose(() => true, key, lifetime, at, false)!;
      const after = less.choose(() => true, key, lifetime, at, false)!;
      if (!removed.has(before)) assert.equal(after, before, `${key}, lifetime ${lifetime}`);
      else moved++;
    }
  }
  // Weights 1-3, three of 1000 members: about 0.3 % of 10 000 choices.
  assert.ok(moved > 5 && moved < 80, `${moved} choices were on the removed members`);
});

test('sticky with a lifetime: removing a member of a small pool moves only the keys it held', () => {
  // Pools of a few members are the common case: every member's side of a key's split must not
  // depend on the others, or a reload without one member moves sessions it never held.
  for (const [size, most] of [[4, 0.03], [8, 0.002], [12, 0], [32, 0], [33, 0]] as const) {
    const members = Array.from({ length: size }, (_, i) => pickable(`socks5://10.0.${i}.1:1080`));
    const full = createStrategy('sticky', members);
    const less = createStrategy('sticky', members.slice(1));
    let kept = 0;
    let moved = 0;
    for (let k = 0; k < 10_000; k++) {
      const at = 1_764_700_000_000 + k * 977;
      const before = full.choose(() => true, `k${k}`, 3_600_000, at, false)!;
      if (before === members[0]) continue;
      kept++;
      if (less.choose(() => true, `k${k}`, 3_600_000, at, false) !== before) moved++;
    }
    assert.ok(moved <= kept * most, `${size} members: ${moved} of ${kept} sessions not on the removed member moved`);
  }
});

test('sticky lifetimes: the member holds within a period, changes every period, and two instances agree', () => {
  const names = ['m0', 'm1', 'm2', 'm3', 'm4'];
  for (const size of [2, 3, 5, 40]) {
    const members = Array.from({ length: size }, (_, i) => pickable(names[i] ?? `x${i}`, 1 + (i % 2)));
    const a = createStrategy('sticky', members);
    const b = createStrategy('sticky', [...members].reverse());
    const lifetime = 60_000;
    for (let k = 0; k < 50; k++) {
      const key = `s${k}`;
      const start = 1_764_700_000_000 + k * 7_777;
      let previous: string | undefined;
      for (let p = 0; p < 12; p++) {
        const at = start + p * lifetime;
        const period = sessionPeriod(fnv1a32(key), lifetime, at);
        const now = a.choose(() => true, key, lifetime, at, false)!.name;
        assert.equal(b.choose(() => true, key, lifetime, at, false)!.name, now, 'instances disagree');
        // The last millisecond of the same period: the same member.
        let end = at;
        while (sessionPeriod(fnv1a32(key), lifetime, end + 1_000) === period) end += 1_000;
        assert.equal(a.choose(() => true, key, lifetime, end, false)!.name, now, 'moved within a period');
        if (previous !== undefined) assert.notEqual(now, previous, `size ${size}, ${key}: no move at the end of period ${period}`);
        previous = now;
      }
    }
  }
});

test('tag filters: tagged members or members filling {NAME}; none left is NoMemberMatchesError (0x04)', async () => {
  const p = createPoolOutbound('tags', pool('round-robin'), {
    members: [spec('de1', 1, { country: 'de' }), spec('us1', 1, { country: 'us' }), spec('provider', 1, {}, ['country']), spec('plain')],
    log: silent,
  });
  const seen = (params: Record<string, string>): string[] => [...new Set(Array.from({ length: 8 }, (_, i) => p.pick(`k${i}`, params)!))].sort();
  assert.deepEqual(seen({}), ['de1']); // pick does not move the cursor
  assert.equal(p.pick('k', { country: 'de', session: 'x', lifetime: '1m' }), 'de1');
  assert.equal(p.pick('k', { country: 'fr' }), 'provider');
  assert.equal(p.pick('k', { city: 'paris' }), undefined);
  const ctx: OutboundContext = { signal: new AbortController().signal, log: silent, sessionKey: 'k', params: { city: 'paris' } };
  await assert.rejects(p.connect({ host: '127.0.0.1', port: 9 }, ctx), (e: unknown) => e instanceof NoMemberMatchesError && e.rep === 0x04 && /no member matches city=paris/.test(e.message));
});

test('fastest: unmeasured members first, then the lowest latency, near ties taking turns', () => {
  const members = [pickable('slow', 1, 80), pickable('new', 1, undefined), pickable('fast1', 1, 10), pickable('fast2', 1, 10.5), pickable('mid', 1, 30)];
  const fastest = createStrategy('fastest', members);
  assert.equal(fastest.choose(() => true, 'k', undefined, 0, true)!.name, 'new');
  members[1]!.latency = 200;
  const picks = Array.from({ length: 6 }, () => fastest.choose(() => true, 'k', undefined, 0, true)!.name);
  assert.deepEqual(new Set(picks), new Set(['fast1', 'fast2']));
  assert.ok(picks.filter((n) => n === 'fast1').length >= 2 && picks.filter((n) => n === 'fast2').length >= 2, picks.join(','));
  assert.equal(fastest.choose((m) => !m.name.startsWith('fast'), 'k', undefined, 0, true)!.name, 'mid');
});

test('fastest: a member tried but never measured (it refused every request) goes after the measured ones, not first every time', () => {
  const members = [pickable('refuser'), pickable('a', 1, 20), pickable('b', 1, 21)];
  const fastest = createStrategy('fastest', members);
  assert.equal(fastest.choose(() => true, 'k', undefined, 0, true)!.name, 'refuser', 'probed once');
  members[0]!.attempts = 1; // and refused: still no latency
  const picks = Array.from({ length: 6 }, () => fastest.choose(() => true, 'k', undefined, 0, true)!.name);
  assert.ok(!picks.includes('refuser'), picks.join(','));
  assert.equal(fastest.choose((m) => m.name === 'refuser', 'k', undefined, 0, true)!.name, 'refuser', 'still chosen when it is all there is');
});

test('fastest: a member whose only connect failed gets a request again once none has tried it for a while', () => {
  const members = [pickable('failed'), pickable('a', 1, 20), pickable('b', 1, 21)];
  const fastest = createStrategy('fastest', members);
  const t0 = 1_000_000;
  members[0]!.attempts = 1; // tried at t0 and failed: no latency
  for (const m of members) m.triedAt = t0;
  const soon = Array.from({ length: 4 }, () => fastest.choose(() => true, 'k', undefined, t0 + 1_000, true)!.name);
  assert.ok(!soon.includes('failed'), soon.join(','));
  const later = t0 + FASTEST_STALE_MS;
  assert.equal(fastest.choose(() => true, 'k', undefined, later, true)!.name, 'failed', 'tried again once stale');
  members[0]!.triedAt = later;
  const after = Array.from({ length: 4 }, () => fastest.choose(() => true, 'k', undefined, later + 1, true)!.name);
  assert.ok(!after.includes('failed'), `once, not on every request: ${after.join(',')}`);
});

test('fastest: a slow member whose figure the health checks keep fresh is never sent a request to measure it again', () => {
  const members = [pickable('slow', 1, 300), pickable('fast', 1, 5)];
  const fastest = createStrategy('fastest', members);
  const t0 = 1_000_000;
  for (const m of members) m.measuredAt = t0; // measured by a health check; no request has tried either
  const picks = Array.from({ length: 4 }, () => fastest.choose(() => true, 'k', undefined, t0 + 1_000, true)!.name);
  assert.deepEqual(picks, ['fast', 'fast', 'fast', 'fast']);
  const later = t0 + FASTEST_STALE_MS;
  members[0]!.measuredAt = later - 1_000; // checked again since
  assert.equal(fastest.choose(() => true, 'k', undefined, later, true)!.name, 'fast');
  assert.equal(fastest.choose(() => true, 'k', undefined, later - 1_000 + FASTEST_STALE_MS, true)!.name, 'slow', 'stale once the checks stop telling');
});

test('templates: {user}, {session} and {NAME} filled; "-KEY-{NAME}" left out when NAME was not given', () => {
  const configured = { username: 'brd-customer-c1-zone-z1-session-{session}-country-{country}', password: 'pw-{user}' };
  assert.deepEqual(placeholdersOf(configured).sort(), ['country', 'session', 'user']);
  const ctx = (params: Record<string, string>, user = 'alice') => ({ user, params, sessionKey: 'fallback' });
  assert.deepEqual(credentialsFor(configured, ctx({ session: 'X1', country: 'de' })), {
    username: 'brd-customer-c1-zone-z1-session-X1-country-de',
    password: 'pw-alice',
  });
  assert.equal(credentialsFor(configured, ctx({ country: 'de' })).username, 'brd-customer-c1-zone-z1-country-de');
  assert.equal(credentialsFor(configured, ctx({})).username, 'brd-customer-c1-zone-z1');
  assert.equal(credentialsFor({ username: '{user}-sessid-{session}' }, ctx({ session: 'a' })).username, 'alice-sessid-a');
  assert.equal(credentialsFor({ username: '{user}-sessid-{session}' }, { sessionKey: '10.0.0.1' }).username, '');
  const plain = { username: 'u', password: 'p' };
  assert.equal(credentialsFor(plain, ctx({ session: 'x' })), plain, 'no template: the configured credentials as they are');
});

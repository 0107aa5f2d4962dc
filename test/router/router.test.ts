import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from '../../src/config/types.js';
import type { DnsResolver } from '../../src/dns/types.js';
import { ConfigError, NameNotResolvedError } from '../../src/errors.js';
import { compileRouter } from '../../src/router/compile.js';
import type { Router } from '../../src/router/types.js';
import { routerConfig } from '../helpers/config.js';
import { resolverWithServer, type DnsRecord } from '../helpers/dns-server.js';

/**
 * A real resolver asking a name server on loopback that knows `records`, with no cache: every
 * lookup the router makes is one A question the server counts (`lookups`).
 */
async function dnsWith(t: TestContext, records: Record<string, DnsRecord> = {}): Promise<{ dns: DnsResolver; lookups(name: string): number }> {
  const { server, dns } = await resolverWithServer(t, records, { cache_size: 0 });
  return { dns, lookups: (name) => server.queries(name, 'A') };
}

async function route(
  router: Router,
  host: string,
  port = 443,
  extra: { user?: string; source?: string; cmd?: Command } = {},
): Promise<string> {
  const d = await router.decide({ dest: { host, port }, cmd: extra.cmd ?? 'connect', user: extra.user, source: extra.source ?? '127.0.0.1' });
  return `${d.rule}#${d.ruleIndex}:${d.action}`;
}

test('first match wins; nothing matching gives the default', async (t) => {
  const { dns } = await dnsWith(t);
  const r = await compileRouter(
    routerConfig(
      [
        { name: 'ads', domains: ['keyword:ads'], action: 'block' },
        { name: 'corp', domains: ['corp.example.com'], action: 'corp' },
        { name: 'all-example', domains: ['example.com'], action: 'other' },
      ],
      undefined,
      'fallback',
    ),
    { dns },
  );
  assert.equal(await route(r, 'ads.corp.example.com'), 'ads#0:block');
  assert.equal(await route(r, 'git.corp.example.com'), 'corp#1:corp');
  assert.equal(await route(r, 'www.example.com'), 'all-example#2:other');
  assert.equal(await route(r, 'example.org'), 'default#-1:fallback');
});

test('fields AND, entries OR; absent fields hold', async (t) => {
  const { dns } = await dnsWith(t);
  const r = await compileRouter(
    routerConfig([
      { name: 'crawler', users: ['alice', 'carol'], ports: [80, '8000-8999'], commands: ['connect'], action: 'pool' },
      { name: 'lan-clients', sources: ['192.168.0.0/16', 'fd00::/8'], domains: ['internal.test'], action: 'corp' },
      { name: 'udp', commands: ['udp'], action: 'block' },
    ]),
    { dns },
  );
  assert.equal(await route(r, 'any.test', 8080, { user: 'carol' }), 'crawler#0:pool');
  assert.equal(await route(r, '1.2.3.4', 80, { user: 'alice' }), 'crawler#0:pool');
  assert.equal(await route(r, 'any.test', 443, { user: 'alice' }), 'default#-1:direct', 'port fails');
  assert.equal(await route(r, 'any.test', 80, { user: 'bob' }), 'default#-1:direct', 'user fails');
  assert.equal(await route(r, 'any.test', 80), 'default#-1:direct', 'anonymous fails a users field');
  assert.equal(await route(r, 'any.test', 80, { user: 'alice', cmd: 'bind' }), 'default#-1:direct', 'command fails');
  assert.equal(await route(r, 'a.internal.test', 1, { source: '192.168.4.5' }), 'lan-clients#1:corp');
  assert.equal(await route(r, 'a.internal.test', 1, { source: '::ffff:192.168.4.5' }), 'lan-clients#1:corp');
  assert.equal(await route(r, 'a.internal.test', 1, { source: 'fd00::7' }), 'lan-clients#1:corp');
  assert.equal(await route(r, 'a.internal.test', 1, { source: '10.0.0.1' }), 'default#-1:direct', 'source fails');
  assert.equal(await route(r, 'other.test', 1, { source: '192.168.4.5' }), 'default#-1:direct', 'destination fails');
  assert.equal(await route(r, 'x.test', 53, { cmd: 'udp' }), 'udp#2:block');
});

test('the destination condition is domains OR cidrs; domains never match an IP literal', async (t) => {
  const { dns, lookups } = await dnsWith(t);
  const r = await compileRouter(
    routerConfig([
      { name: 'names', domains: ['example.com'], action: 'a' },
      { name: 'intranet', domains: ['corp.test'], cidrs: ['10.0.0.0/8', 'fd00::/8'], resolve: false, action: 'b' },
    ]),
    { dns },
  );
  assert.equal(await route(r, 'x.corp.test'), 'intranet#1:b');
  assert.equal(await route(r, '10.2.3.4'), 'intranet#1:b');
  assert.equal(await route(r, '::ffff:10.2.3.4'), 'intranet#1:b');
  assert.equal(await route(r, 'fd00::1'), 'intranet#1:b');
  assert.equal(await route(r, '93.184.216.34'), 'default#-1:direct');
  assert.equal(lookups('x.corp.test'), 0, 'a domain match asks no name server');
});

test('a name reaching a rule with cidrs is resolved once, and the answer rides on the decision', async (t) => {
  const { dns, lookups } = await dnsWith(t, { 'wiki.corp.test': { A: ['10.8.3.3'] }, 'public.test': { A: ['198.51.100.1'], AAAA: ['2001:db8::1'] } });
  const r = await compileRouter(
    routerConfig([
      { name: 'v6-only', cidrs: ['fd00::/8'], action: 'a' },
      { name: 'port-gated', ports: [22], cidrs: ['0.0.0.0/0'], action: 'b' },
      { name: 'intranet', cidrs: ['10.0.0.0/8'], action: 'corp' },
      { name: 'docs', cidrs: ['2001:db8::/32'], action: 'c' },
    ]),
    { dns },
  );
  const d = await r.decide({ dest: { host: 'Wiki.Corp.Test', port: 443 }, cmd: 'connect', source: '127.0.0.1' });
  const { cidrs, ...rest } = d;
  assert.deepEqual(rest, { rule: 'intranet', ruleIndex: 2, action: 'corp', resolved: [{ address: '10.8.3.3', family: 4 }] });
  assert.ok(cidrs?.hasText('10.8.3.3') && !cidrs.hasText('11.0.0.1'), "the rule's own cidrs ride on the decision (the egress guard's lift)");
  assert.equal(lookups('wiki.corp.test'), 1, 'one lookup for three CIDR rules');

  assert.equal(await route(r, 'public.test'), 'docs#3:c', 'any resolved address may match');
  assert.equal(lookups('public.test'), 1);

  const miss = await r.decide({ dest: { host: 'nx.test', port: 443 }, cmd: 'connect', source: '127.0.0.1' });
  const { unresolved, ...missed } = miss;
  assert.deepEqual(missed, { rule: 'default', ruleIndex: -1, action: 'direct' }, 'a failed lookup is no match, not an error');
  assert.ok(unresolved instanceof NameNotResolvedError, 'the failure rides on the decision: the connect does not ask again');
  assert.equal(lookups('nx.test'), 1, 'and is not retried by later rules');
});

test('resolve: false keeps names away from cidrs; cheap checks come before any lookup', async (t) => {
  const { dns, lookups } = await dnsWith(t, { 'wiki.corp.test': { A: ['10.8.3.3'] } });
  const r = await compileRouter(
    routerConfig([
      { name: 'ssh', ports: [22], cidrs: ['10.0.0.0/8'], action: 'ssh' },
      { name: 'no-resolve', cidrs: ['10.0.0.0/8'], resolve: false, action: 'corp' },
    ]),
    { dns },
  );
  assert.equal(await route(r, 'wiki.corp.test', 443), 'default#-1:direct');
  assert.equal(lookups('wiki.corp.test'), 0, 'port 443 fails "ssh" before its cidrs, and "no-resolve" never asks');
  const d = await r.decide({ dest: { host: 'wiki.corp.test', port: 22 }, cmd: 'connect', source: '127.0.0.1' });
  assert.equal(d.rule, 'ssh');
  assert.equal(lookups('wiki.corp.test'), 1);
});

test('a domain match needs no lookup even when the rule also has cidrs', async (t) => {
  const { dns, lookups } = await dnsWith(t, { 'x.corp.test': { A: ['10.1.1.1'] } });
  const r = await compileRouter(routerConfig([{ name: 'i', domains: ['corp.test'], cidrs: ['10.0.0.0/8'], action: 'corp' }]), { dns });
  const d = await r.decide({ dest: { host: 'x.corp.test.', port: 80 }, cmd: 'connect', source: '127.0.0.1' });
  const { cidrs, ...rest } = d;
  assert.deepEqual(rest, { rule: 'i', ruleIndex: 0, action: 'corp' });
  assert.ok(cidrs?.hasText('10.1.1.1'), 'a rule that matched by domain still carries its cidrs');
  assert.equal(lookups('x.corp.test'), 0);
});

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-router-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('list files: one entry a line, comments and blanks ignored, re-read on every compile', async (t) => {
  const dir = await tempDir(t);
  const { dns } = await dnsWith(t);
  await writeFile(join(dir, 'domains.txt'), '# blocked names\n\nads.example   # trailing note\r\nfull:track.test\n  keyword:beacon\n');
  await writeFile(join(dir, 'nets.txt'), '# corp\n10.0.0.0/8\nfd00::/8\n\n');
  const cfg = routerConfig(
    [
      { name: 'lists', domains_file: 'domains.txt', action: 'block' },
      { name: 'nets', cidrs_file: 'nets.txt', resolve: false, action: 'corp' },
    ],
    dir,
  );
  const r1 = await compileRouter(cfg, { dns });
  assert.equal(await route(r1, 'x.ads.example'), 'lists#0:block');
  assert.equal(await route(r1, 'track.test'), 'lists#0:block');
  assert.equal(await route(r1, 'a.track.test'), 'default#-1:direct');
  assert.equal(await route(r1, 'my-beacon.test'), 'lists#0:block');
  assert.equal(await route(r1, 'fd00::5'), 'nets#1:corp');
  assert.equal(await route(r1, '#'), 'default#-1:direct');

  await writeFile(join(dir, 'domains.txt'), 'other.example\n');
  const r2 = await compileRouter(cfg, { dns });
  assert.equal(await route(r2, 'x.ads.example'), 'default#-1:direct');
  assert.equal(await route(r2, 'other.example'), 'lists#0:block');
  assert.equal(await route(r1, 'x.ads.example'), 'lists#0:block', 'a compiled router never changes');
});

test('an empty list file matches nothing', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'empty.txt'), '# nothing yet\n');
  const { dns } = await dnsWith(t);
  const r = await compileRouter(routerConfig([{ name: 'e', domains_file: 'empty.txt', action: 'block' }], dir), { dns });
  assert.equal(await route(r, 'example.com'), 'default#-1:direct');
});

test('bad lines in list files are ConfigErrors naming FILE:LINE:COL, all files at once', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'd.txt'), 'ok.example\n# fine\nbad domain here\nregexp:([a-z\n');
  await writeFile(join(dir, 'c.txt'), '10.0.0.0/8\n\n  10.0.0.0/33\n');
  const { dns } = await dnsWith(t);
  const cfg = routerConfig(
    [
      { name: 'd', domains_file: 'd.txt', action: 'block' },
      { name: 'c', cidrs_file: 'c.txt', action: 'block' },
      { name: 'm', cidrs_file: 'missing.txt', action: 'block' },
    ],
    dir,
  );
  await assert.rejects(compileRouter(cfg, { dns }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.issues.length, 4, err.message);
    assert.match(err.issues[0]!, new RegExp(`^${join(dir, 'd.txt')}:3:1: invalid domain "bad domain here"`));
    assert.match(err.issues[1]!, new RegExp(`^${join(dir, 'd.txt')}:4:1: invalid regexp`));
    assert.match(err.issues[2]!, new RegExp(`^${join(dir, 'c.txt')}:3:3: invalid CIDR "10.0.0.0/33"`));
    // A config built without the loader has no line to give: the config file and the key.
    assert.equal(err.issues[3], `/etc/socksgate.yaml: rules[2].cidrs_file: cannot read ${join(dir, 'missing.txt')} (ENOENT)`);
    return true;
  });
});

test('an invalid inline entry (which the loader should have caught) is a ConfigError too', async (t) => {
  const { dns } = await dnsWith(t);
  await assert.rejects(
    compileRouter(routerConfig([{ name: 'x', cidrs: ['10.0.0.0/99'], ports: ['9-1'], action: 'block' }]), { dns }),
    (err: unknown) => err instanceof ConfigError && err.issues.length === 2 && err.issues[0]!.startsWith('/etc/socksgate.yaml: rule "x": '),
  );
});

test('a rule with no condition at all matches everything', async (t) => {
  const { dns } = await dnsWith(t);
  const r = await compileRouter(routerConfig([{ name: 'catch-all', action: 'corp' }]), { dns });
  assert.equal(await route(r, '::1', 1, { cmd: 'bind' }), 'catch-all#0:corp');
});

test('a bracketed IP literal sent as a name meets the CIDRs as the address it is, resolve: false or not', async (t) => {
  // The DNS layer connects "[::1]" to ::1 without a query: routing must see the same address.
  const { dns } = await dnsWith(t);
  const r = await compileRouter(
    routerConfig([
      { name: 'loopback', cidrs: ['::1', '127.0.0.0/8'], resolve: false, action: 'block' },
      { name: 'lan', domains: ['keyword:10'], cidrs: ['10.0.0.0/8'], action: 'corp' },
    ]),
    { dns },
  );
  assert.equal(await route(r, '[::1]'), 'loopback#0:block');
  assert.equal(await route(r, '[0:0:0:0:0:0:0:1]'), 'loopback#0:block');
  assert.equal(await route(r, '[::ffff:127.0.0.1]'), 'loopback#0:block');
  assert.equal(await route(r, '[127.0.0.1]'), 'loopback#0:block');
  assert.equal(await route(r, '[::ffff:10.1.2.3]'), 'lan#1:corp');
  assert.equal(await route(r, '[::2]'), 'default#-1:direct');
});

test('0.0.0.0 and :: meet the rules for the loopback address they reach; a BIND naming them (any peer) does not', async (t) => {
  const { dns } = await dnsWith(t, { 'sink.test': { A: ['0.0.0.0'] }, 'sink6.test': { AAAA: ['::'] } });
  const r = await compileRouter(
    routerConfig([
      { name: 'loopback4', cidrs: ['127.0.0.0/8'], action: 'block' },
      { name: 'loopback6', cidrs: ['::1/128'], action: 'corp' },
    ]),
    { dns },
  );
  for (const host of ['0.0.0.0', '::ffff:0.0.0.0', '[0.0.0.0]', 'sink.test']) {
    assert.equal(await route(r, host), 'loopback4#0:block', host);
    assert.equal(await route(r, host, 53, { cmd: 'udp' }), 'loopback4#0:block', `${host} udp`);
    assert.equal(await route(r, host, 21, { cmd: 'bind' }), 'default#-1:direct', `${host} bind`);
  }
  for (const host of ['::', '0:0:0:0:0:0:0:0', '[::]', '::%lo', 'sink6.test']) {
    assert.equal(await route(r, host), 'loopback6#1:corp', host);
    assert.equal(await route(r, host, 21, { cmd: 'bind' }), 'default#-1:direct', `${host} bind`);
  }
  assert.equal(await route(r, '0.0.0.1'), 'default#-1:direct', 'only the unspecified address itself');
});

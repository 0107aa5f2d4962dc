// Member tags from the three places a config gives them (a URL's `#k=v`, an object's `tags`,
// a members_file line), as the built pool filters by them.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { createResolver } from '../../src/dns/resolver.js';
import { ConfigError } from '../../src/errors.js';
import { buildOutbounds, closeOutbounds } from '../../src/outbound/build.js';
import { parseMemberUrl } from '../../src/config/member-url.js';
import { isPoolOutbound } from '../../src/outbound/stats.js';

const log = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 10, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });

test('member URL tags: after the user info, not in the display name; malformed tags are refused without the password', () => {
  const m = parseMemberUrl('socks5://u:p@h:1#country=de,city=new_york');
  assert.deepEqual(m.tags, { country: 'de', city: 'new_york' });
  assert.equal(m.display, 'socks5://u@h:1');
  assert.deepEqual(parseMemberUrl('http://h:1').tags, {});
  assert.throws(() => parseMemberUrl('socks5://h:1#country'), /key=value/);
  assert.throws(() => parseMemberUrl('socks5://h:1#country=d e'), /letters, digits/);
  assert.throws(() => parseMemberUrl('socks5://u:secret@h:1#=x'), (e: Error) => !e.message.includes('secret'));
});

test('a pool filters by tags from URLs, objects and members_file lines', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-tags-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'proxies.txt'), '# list\nsocks5://127.0.0.3:1080#country=fr\nsocks5://127.0.0.4:1080#country=de,asn=3320\n');
  const file = join(dir, 'socksgate.yaml');
  await writeFile(
    file,
    [
      'upstreams:',
      '  crawl:',
      '    type: pool',
      '    strategy: sticky',
      '    members_file: proxies.txt',
      '    members:',
      '      - "socks5://127.0.0.1:1080#country=de"',
      '      - { url: "socks5://127.0.0.2:1080", weight: 2, tags: { country: us } }',
      '      - "socks5://p-{country}:pw@127.0.0.5:1080"',
      '      - "http://h-{country}:pw@127.0.0.6:3128"',
      '      - "socks4://s-{country}@127.0.0.7:1080"',
      '',
    ].join('\n'),
  );
  const built = await buildOutbounds(await loadConfig({ path: file }), { dns, log });
  t.after(() => closeOutbounds(built));
  const pool = built.get('crawl')!;
  assert.ok(isPoolOutbound(pool));
  const picks = (params: Record<string, string>): Set<string | undefined> => new Set(Array.from({ length: 60 }, (_, k) => pool.pick(`k${k}`, params)));
  const host = (name: string | undefined): string => (name === undefined ? 'none' : new URL(name).hostname);
  assert.deepEqual(new Set([...picks({ asn: '3320' })].map(host)), new Set(['127.0.0.4']));
  assert.deepEqual(new Set([...picks({ country: 'de' })].map(host)), new Set(['127.0.0.1', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7']));
  assert.deepEqual(new Set([...picks({ country: 'jp' })].map(host)), new Set(['127.0.0.5', '127.0.0.6', '127.0.0.7']), 'only the members that fill {country}, whatever their scheme');
  assert.deepEqual(new Set([...picks({ asn: '1' })].map(host)), new Set(['none']));

  await writeFile(join(dir, 'proxies.txt'), 'socks5://127.0.0.3:1080#country\n');
  await assert.rejects(buildOutbounds(await loadConfig({ path: file }), { dns, log }), (e: unknown) => e instanceof ConfigError && /proxies\.txt:1:1: tags after "#" must be/.test(e.issues.join('\n')));
});

// Member tags from the three places a config gives them (a URL's `#k=v`, an object's `tags`,
// a members_file line), as the built pool filters by them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { createResolver } from '../../src/dns/resolver.js';
import { ConfigError } from '../../src/errors.js';
import { buildOutbounds, closeOutbounds } from '../../src/outbound/build.js';
import { splitTags } from '../../src/outbound/member-tags.js';
import { isPoolOutbound } from '../../src/outbound/stats.js';

const log = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 10, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });

test('splitTags: tags after the user info, the URL without them; malformed tags name themselves', () => {
  assert.deepEqual(splitTags('socks5://u:p@h:1#country=de,city=new_york'), { url: 'socks5://u:p@h:1', tags: { country: 'de', city: 'new_york' } });
  assert.deepEqual(splitTags('socks5://h:1'), { url: 'socks5://h:1', tags: {} });
  assert.throws(() => splitTags('socks5://h:1#country'), /#country/);
  assert.throws(() => splitTags('socks5://h:1#country=d e'), /letters, digits/);
  assert.throws(() => splitTags('socks5://u:secret@h:1#=x'), (e: Error) => !e.message.includes('secret'));
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
  assert.deepEqual(new Set([...picks({ country: 'de' })].map(host)), new Set(['127.0.0.1', '127.0.0.4', '127.0.0.5']));
  assert.deepEqual(new Set([...picks({ country: 'jp' })].map(host)), new Set(['127.0.0.5']), 'only the member that fills {country}');
  assert.deepEqual(new Set([...picks({ asn: '1' })].map(host)), new Set(['none']));

  await writeFile(join(dir, 'proxies.txt'), 'socks5://127.0.0.3:1080#country\n');
  await assert.rejects(buildOutbounds(await loadConfig({ path: file }), { dns, log }), (e: unknown) => e instanceof ConfigError && /proxies\.txt:1:1: tags must be/.test(e.issues.join('\n')));
});

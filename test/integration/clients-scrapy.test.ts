// Scrapy (Debian's python3-scrapy) crawling through the HTTP front with proxy auth in
// meta['proxy']: http:// pages go absolute-form over Scrapy's keep-alive pool, an https://
// page through CONNECT (Scrapy moves Proxy-Authorization onto the CONNECT request).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseUsername, stickyKey } from '../../src/protocol/username.js';
import { startGateway, type TestGateway } from '../helpers/index.js';
import { SYSTEM_PYTHON, cleanEnv, runProcess, startHttpsServer, startRecordingHttpServer, tempDir } from '../helpers/clients.js';
import { poolOf } from '../helpers/pool.js';
import { startMicrosocks, type RunningUpstream } from '../helpers/upstreams.js';

const SPIDER = `
import scrapy

class Pages(scrapy.Spider):
    name = "pages"

    def __init__(self, start=None, secure=None, proxy=None, **kw):
        super().__init__(**kw)
        self.start, self.secure, self.proxy = start, secure, proxy

    def start_requests(self):
        yield scrapy.Request(self.start, meta={"proxy": self.proxy})
        yield scrapy.Request(self.secure, meta={"proxy": self.proxy}, callback=self.parse_secure)

    def parse(self, response):
        yield {"url": response.url, "title": response.css("title::text").get()}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, meta={"proxy": self.proxy})

    def parse_secure(self, response):
        yield {"url": response.url, "title": response.text.strip()}
`;

/** Four linked pages: / → /p1 /p2 /p3, /p1 → /p2 again (Scrapy's dupe filter drops it). */
const PAGES: Readonly<Record<string, { title: string; links: string[] }>> = {
  '/': { title: 'index', links: ['/p1', '/p2', '/p3'] },
  '/p1': { title: 'page one', links: ['/p2'] },
  '/p2': { title: 'page two', links: [] },
  '/p3': { title: 'page three', links: [] },
};

// No telnet console listening, no robots.txt fetch, no retries, bounded everything.
const SETTINGS = [
  'ROBOTSTXT_OBEY=False',
  'RETRY_ENABLED=False',
  'TELNETCONSOLE_ENABLED=False',
  'COOKIES_ENABLED=False',
  'HTTPCACHE_ENABLED=False',
  'LOG_LEVEL=WARNING',
  'CLOSESPIDER_TIMEOUT=60',
  'DOWNLOAD_TIMEOUT=15',
  'CONCURRENT_REQUESTS=4',
  'REQUEST_FINGERPRINTER_IMPLEMENTATION=2.7',
];

test('scrapy runspider crawls a local site through the gateway with proxy auth in meta["proxy"]', async (t) => {
  const tmp = await tempDir('scrapy');
  t.after(() => tmp.remove());
  const web = await startRecordingHttpServer((req, res) => {
    const page = PAGES[req.url ?? ''];
    if (!page) {
      res.statusCode = 404;
      res.end('no such page\n');
      return;
    }
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><title>${page.title}</title>${page.links.map((l) => `<a href="${l}">${l}</a>`).join(' ')}`);
  });
  t.after(() => web.close());
  const tls = await startHttpsServer(tmp.dir, (_req, res) => res.end('secure page\n'));
  t.after(() => tls.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'scrapy-pw' }] } });
  t.after(() => gw.close());

  const spider = join(tmp.dir, 'pages_spider.py');
  await writeFile(spider, SPIDER);
  const items = join(tmp.dir, 'items.json');
  const r = await runProcess(
    SYSTEM_PYTHON,
    [
      '-m', 'scrapy', 'runspider', spider, '-O', items,
      '-a', `start=${web.url}/`, '-a', `secure=${tls.url}/secure`, '-a', `proxy=http://alice:scrapy-pw@127.0.0.1:${gw.port}`,
      ...SETTINGS.flatMap((s) => ['-s', s]),
    ],
    { timeoutMs: 120_000, env: cleanEnv(tmp.dir), cwd: tmp.dir },
  );
  assert.equal(r.code, 0, `scrapy exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr}`);

  // The spider's output: every page once, the https one included.
  const got = (JSON.parse(await readFile(items, 'utf8')) as Array<{ url: string; title: string }>).map((i) => `${i.url} ${i.title}`).sort();
  assert.deepEqual(got, [
    `${web.url}/ index`,
    `${web.url}/p1 page one`,
    `${web.url}/p2 page two`,
    `${web.url}/p3 page three`,
    `${tls.url}/secure secure page`,
  ]);

  // Each page reached the origin once, without the proxy credentials.
  assert.deepEqual(web.seen.map((s) => s.url).sort(), ['/', '/p1', '/p2', '/p3']);
  assert.deepEqual(
    tls.seen.map((s) => s.url),
    ['/secure'],
  );
  for (const s of [...web.seen, ...tls.seen]) assert.equal(s.headers['proxy-authorization'], undefined, `${s.url} carried Proxy-Authorization`);

  // ...and each went through the gateway as alice: four forwarded requests and one tunnel.
  const plainDest = `127.0.0.1:${web.port}`;
  const ended = (): Array<Record<string, unknown>> => gw.logs.filter((l) => l.msg === 'session end');
  await gw.accessLog(() => ended().filter((l) => l.dest === plainDest).length >= 4, 5_000);
  const plain = ended().filter((l) => l.dest === plainDest);
  assert.equal(plain.length, 4);
  for (const l of plain) {
    assert.equal(l.protocol, 'http');
    assert.equal(l.user, 'alice');
    assert.equal(l.status, 200);
    assert.equal(l.rep, 0);
  }
  const tunnel = await gw.accessLog((l) => l.dest === `127.0.0.1:${tls.port}`, 5_000);
  assert.equal(tunnel?.protocol, 'http');
  assert.equal(tunnel?.user, 'alice');
  assert.equal(tunnel?.status, 200);
  assert.equal(
    ended().filter((l) => l.status === 407).length,
    0,
    'Scrapy sends the credentials up front',
  );
  assert.ok(!JSON.stringify(gw.logs).includes('scrapy-pw'), 'no password in the logs');
});

// The README's crawler: many sessions through a sticky pool, https:// with the credentials in
// meta['proxy'], http:// with a Proxy-Authorization header of the request's own (Scrapy's two
// ways). Scrapy keeps one connection to the proxy for every http:// request, whoever's they are.
const SESSION_SPIDER = `
import scrapy
from w3lib.http import basic_auth_header

class Sessions(scrapy.Spider):
    name = "sessions"

    def __init__(self, gateway=None, password=None, secure=None, plain=None, users=None, pages=None, **kw):
        super().__init__(**kw)
        self.gateway, self.password, self.secure, self.plain = gateway, password, secure, plain
        self.users, self.pages = users.split(","), int(pages)

    def start_requests(self):
        for p in range(self.pages):
            for user in self.users:
                yield scrapy.Request(f"{self.secure}/{user}/{p}", meta={"proxy": f"http://{user}:{self.password}@{self.gateway}"})
                yield scrapy.Request(f"{self.plain}/{user}/{p}", meta={"proxy": f"http://{self.gateway}"},
                                     headers={"Proxy-Authorization": basic_auth_header(user, self.password)})

    def parse(self, response):
        yield {"url": response.url, "peer": response.text.strip()}
`;

test('scrapy sessions through a sticky pool: each stays on its member, country-us only on us members, and a member killed mid-crawl moves only its sessions, until it is back', { timeout: 150_000 }, async (t) => {
  const tmp = await tempDir('scrapy-sessions');
  t.after(() => tmp.remove());
  const [de, us1, us2] = await Promise.all(['127.0.0.187', '127.0.0.188', '127.0.0.189'].map((host) => startMicrosocks({ host })));
  const members = { de: de!, us1: us1!, us2: us2! };
  for (const m of Object.values(members)) t.after(() => m.close());
  const memberUrl = (m: RunningUpstream): string => `socks5://${m.host}:${m.port}`;
  const tagged = { de: `${memberUrl(members.de)}#country=de`, us1: `${memberUrl(members.us1)}#country=us`, us2: `${memberUrl(members.us2)}#country=us` };

  // Every page answers with the address it came from: the member that carried it. Past half of
  // the first crawl, one page (not through the victim) is held until the victim is dead.
  let victim: RunningUpstream | undefined;
  let killAt = Infinity;
  const served: Array<{ url: string; peer: string; after: boolean }> = [];
  const answer = (req: IncomingMessage, res: ServerResponse): void => {
    const peer = req.socket.remoteAddress ?? '';
    const entry = { url: req.url ?? '', peer, after: victim === undefined && killAt === -1 };
    served.push(entry);
    if (victim && served.length >= killAt && peer !== victim.host) {
      const dying = victim;
      victim = undefined;
      killAt = -1;
      void dying.close().then(() => res.end(peer));
      return;
    }
    res.end(peer);
  };
  const plain = await startRecordingHttpServer(answer);
  t.after(() => plain.close());
  const secure = await startHttpsServer(tmp.dir, answer);
  t.after(() => secure.close());

  const PASSWORD = 'scrapy-sessions-pw';
  const pool = (list: string[]): Record<string, unknown> => ({
    auth: { users: [{ username: 'alice', password: PASSWORD }] },
    upstreams: { crawl: { type: 'pool', strategy: 'sticky', members: list, health_check: { interval: '200ms', timeout: '1s', target: `127.0.0.1:${plain.port}` } } },
    rules: [{ name: 'crawler', users: ['alice'], action: 'crawl' }],
    default: 'block',
  });
  const gw = await startGateway(pool([tagged.de, tagged.us1, tagged.us2]));
  t.after(() => gw.close());

  const users = [...Array.from({ length: 10 }, (_, i) => `alice-session-K${i}`), ...Array.from({ length: 6 }, (_, i) => `alice-session-U${i}-country-us`)];
  const hostOf = (member: string | undefined): string => new URL(member ?? 'socks5://none').hostname;
  const pickIn = (g: TestGateway, user: string): string => {
    const { user: name, params } = parseUsername(user)!;
    return hostOf(poolOf(g).pick(stickyKey(name, params['session'], '127.0.0.1'), params));
  };
  const before = new Map(users.map((u) => [u, pickIn(gw, u)]));
  // The victim: the us member holding most of the country-us sessions (at least three of six).
  const onUs1 = users.filter((u) => u.includes('country') && before.get(u) === members.us1.host).length;
  const [dying, staying] = onUs1 >= 3 ? [members.us1, members.us2] : [members.us2, members.us1];
  // Where sessions go without the victim: a pool of the other two (rendezvous hashing moves
  // only the keys of a member that leaves).
  const other = await startGateway(pool([tagged.de, dying === members.us1 ? tagged.us2 : tagged.us1]));
  t.after(() => other.close());
  const after = new Map(users.map((u) => [u, pickIn(other, u)]));

  const crawl = async (pages: number, out: string): Promise<Array<{ url: string; peer: string }>> => {
    const spider = join(tmp.dir, 'sessions_spider.py');
    await writeFile(spider, SESSION_SPIDER);
    const r = await runProcess(
      SYSTEM_PYTHON,
      [
        '-m', 'scrapy', 'runspider', spider, '-O', join(tmp.dir, out),
        '-a', `gateway=127.0.0.1:${gw.port}`, '-a', `password=${PASSWORD}`, '-a', `secure=${secure.url}`, '-a', `plain=${plain.url}`,
        '-a', `users=${users.join(',')}`, '-a', `pages=${pages}`,
        // One request at a time, so "before" and "after" the kill are two clean halves.
        ...[...SETTINGS, 'CONCURRENT_REQUESTS=1'].flatMap((s) => ['-s', s]),
      ],
      { timeoutMs: 120_000, env: cleanEnv(tmp.dir), cwd: tmp.dir },
    );
    assert.equal(r.code, 0, `scrapy exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr}`);
    return JSON.parse(await readFile(join(tmp.dir, out), 'utf8')) as Array<{ url: string; peer: string }>;
  };
  const userOf = (url: string): string => new URL(url, 'http://x').pathname.split('/')[1]!;

  // The first crawl, the victim killed halfway through it: no page lost (retries are off),
  // each page from its session's member, before and after.
  victim = dying;
  killAt = users.length * 2;
  const first = await crawl(2, 'first.json');
  assert.equal(first.length, users.length * 4, 'every page of the first crawl arrived');
  assert.equal(killAt, -1, 'the victim was killed mid-crawl');
  assert.ok(served.some((s) => s.after), 'pages were served after the kill');
  for (const s of served) {
    const user = userOf(s.url);
    assert.equal(s.peer, (s.after ? after : before).get(user), `${s.url} ${s.after ? 'after' : 'before'} the kill`);
    if (user.includes('country-us')) assert.notEqual(s.peer, members.de.host, `${s.url}: a country-us session on the de member`);
  }
  const moved = users.filter((u) => before.get(u) !== after.get(u));
  t.diagnostic(`killed ${dying.host} after ${served.filter((s) => !s.after).length} pages; moved: ${moved.map((u) => `${u} → ${after.get(u)}`).join(', ')}`);
  assert.ok(moved.length >= 3 && moved.every((u) => before.get(u) === dying.host), `only the victim's sessions moved: ${moved.join(',')}`);
  for (const u of moved.filter((x) => x.includes('country-us'))) assert.equal(after.get(u), staying.host, `${u} moved to the other us member`);

  // The http:// pages shared Scrapy's one connection to the gateway, each routed on its own session.
  const plainLines = gw.logs.filter((l) => l.msg === 'session end' && l.dest === `127.0.0.1:${plain.port}` && l.status === 200);
  const membersBySid = new Map<unknown, Set<unknown>>();
  for (const l of plainLines) membersBySid.set(l.sid, (membersBySid.get(l.sid) ?? new Set()).add(l.member));
  assert.ok([...membersBySid.values()].some((m) => m.size >= 2), 'one client connection carried pages of sessions on different members');
  assert.equal(gw.logs.filter((l) => l.msg === 'session end' && l.status === 407).length, 0, 'Scrapy sends the credentials up front');

  // The member back on its address: once a health check passes, its sessions return to it.
  const back = await startMicrosocks({ host: dying.host, port: dying.port });
  t.after(() => back.close());
  const dyingName = memberUrl(dying);
  for (let i = 0; i < 100 && !poolOf(gw).stats().find((m) => m.name === dyingName)?.healthy; i++) await sleep(100);
  assert.ok(poolOf(gw).stats().find((m) => m.name === dyingName)?.healthy, 'the member is healthy again');
  served.length = 0;
  const second = await crawl(1, 'second.json');
  assert.equal(second.length, users.length * 2);
  for (const s of served) assert.equal(s.peer, before.get(userOf(s.url)), `${s.url} back on its member`);
  assert.ok(!JSON.stringify(gw.logs).includes(PASSWORD), 'no password in the logs');
});

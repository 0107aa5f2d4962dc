// Scrapy (Debian's python3-scrapy) crawling through the HTTP front with proxy auth in
// meta['proxy']: http:// pages go absolute-form over Scrapy's keep-alive pool, an https://
// page through CONNECT (Scrapy moves Proxy-Authorization onto the CONNECT request).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startGateway } from '../helpers/index.js';
import { SYSTEM_PYTHON, cleanEnv, runProcess, startHttpsServer, startRecordingHttpServer, tempDir } from '../helpers/clients.js';

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

// The status page in a real browser: Debian's Chromium driven by playwright-core (no
// browser download). Set STATUS_PAGE_SCREENSHOT=docs/status-page.png to refresh the
// README's screenshot.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { adminClient } from '../helpers/admin.js';
import { closedWithin, socksConnect, startEchoServer, startGateway } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';
import { readAll, startMicrosocks } from '../helpers/upstreams.js';

const TOKEN = 'status-page-token-0001';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

test('the status page shows the pool members, bans one from the page, and logs no console error', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const a = await startMicrosocks({ host: '127.0.0.63', user: 'pooluser', pass: 'page-member-secret' });
  t.after(() => a.close());
  const b = await startMicrosocks({ host: '127.0.0.64' });
  t.after(() => b.close());
  const memberA = `socks5://pooluser@127.0.0.63:${a.port}`; // the name keeps the user, never the password
  const memberB = `socks5://127.0.0.64:${b.port}`;
  const gw = await startGateway({
    metrics: { host: '127.0.0.1', port: 0, api_token: TOKEN },
    auth: { users: [{ username: 'crawler', password: 'page-user-secret' }], allow_anonymous: true },
    upstreams: {
      corp: { type: 'socks5', host: '127.0.0.9', port: 1080, username: 'corp', password: 'page-upstream-secret' },
      crawl: { type: 'pool', members: [`socks5://pooluser:page-member-secret@127.0.0.63:${a.port}`, memberB] },
    },
    rules: [
      { name: 'crawler', users: ['crawler'], action: 'crawl' },
      { name: 'local', cidrs: ['127.0.0.0/8'], action: 'direct' },
    ],
  });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);

  // Some traffic for the rules table, and one connection left open for the connections table.
  const exchange = async (userId: string | undefined, bytes: number): Promise<void> => {
    const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 5_000, userId ? { userId, password: 'page-user-secret' } : {});
    socket.write(Buffer.alloc(bytes, 0x61));
    let got = 0;
    while (got < bytes) got += ((await once(socket, 'data')) as [Buffer])[0].length;
    socket.end();
    await closedWithin(socket);
  };
  await exchange('crawler', 20_000);
  await exchange(undefined, 50_000);
  const { socket: open } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 5_000, { userId: 'crawler', password: 'page-user-secret' });
  t.after(() => open.destroy());

  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, timeout: 60_000 });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  page.setDefaultTimeout(20_000);
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  const requested: string[] = [];
  page.on('request', (r) => requested.push(r.url()));

  await page.goto(`${api.base}/`);
  await page.fill('#token', TOKEN);
  await page.click('#login button[type=submit]');
  const pool = page.locator('table[data-pool="crawl"]');
  await pool.locator('td.member', { hasText: memberB }).waitFor();
  assert.deepEqual(await pool.locator('td.member').allTextContents(), [memberA, memberB]);
  await page.locator('#rules td', { hasText: 'crawler' }).first().waitFor();
  await page.locator('#connections td', { hasText: memberA }).or(page.locator('#connections td', { hasText: memberB })).first().waitFor();

  // Ban member A from the page: the API says so, and so does the page.
  await pool.locator('tr', { hasText: memberA }).getByRole('button', { name: 'Ban' }).click();
  await pool.locator('tr', { hasText: memberA }).getByRole('button', { name: 'Unban' }).waitFor();
  const upstreams = (await api.request('GET', '/api/upstreams')).json as { pools: Array<{ members: Array<{ name: string; banned_until: string | null }> }> };
  const banned = upstreams.pools[0]!.members.find((m) => m.name === memberA)!;
  assert.ok(banned.banned_until !== null && Date.parse(banned.banned_until) > Date.now(), JSON.stringify(banned));
  assert.match((await pool.locator('tr', { hasText: memberA }).textContent()) ?? '', /banned until/);

  if (process.env.STATUS_PAGE_SCREENSHOT) {
    // A few seconds of downloads (a small request, a bigger answer) so the chart has lines to draw.
    const download = await listenTracked(
      createServer((s) => {
        s.on('error', () => {});
        s.once('data', (c: Buffer) => s.end(Buffer.alloc(Number(c.toString()), 0x62)));
      }),
    );
    t.after(() => download.close());
    for (let i = 0; i < 12; i++) {
      const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: download.port }, 5_000, i % 3 ? {} : { userId: 'crawler', password: 'page-user-secret' });
      socket.write(String(300_000 + 150_000 * (i % 5)));
      await readAll(socket);
      await new Promise((r) => setTimeout(r, 600));
    }
    await page.screenshot({ path: process.env.STATUS_PAGE_SCREENSHOT, fullPage: true });
  }

  const html = await page.content();
  for (const secret of ['page-member-secret', 'page-user-secret', 'page-upstream-secret']) assert.ok(!html.includes(secret), secret);
  assert.deepEqual(problems, []);
  assert.deepEqual(requested.filter((u) => !u.startsWith(`${api.base}/`)), [], 'nothing is fetched from elsewhere');
});

/** Chromium on the status page of `base`, the token typed in; console errors collected. */
async function openPage(t: TestContext, base: string, token: string, prepare?: (page: Page) => Promise<unknown>): Promise<{ page: Page; problems: string[] }> {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, timeout: 60_000 });
  t.after(() => browser.close());
  const page = await browser.newPage();
  page.setDefaultTimeout(20_000);
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await prepare?.(page);
  await page.goto(`${base}/`);
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  return { page, problems };
}

test('the status page connects with a token that holds non-ASCII letters, as the API takes it', async (t) => {
  const token = 'status page token é €';
  const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0, api_token: token } });
  t.after(() => gw.close());
  const { page, problems } = await openPage(t, adminClient(gw.gw).base, token);
  await page.locator('#status', { hasText: /^Connected\./ }).waitFor();
  assert.equal(await page.locator('#main').isVisible(), true);
  assert.deepEqual(problems, []);
});

test('"Forget token" during a refresh sticks: the refresh under way neither shows the page again nor polls on', async (t) => {
  const TOKEN_B = 'status-page-token-0002';
  const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0, api_token: TOKEN_B } });
  t.after(() => gw.close());
  const { page, problems } = await openPage(t, adminClient(gw.gw).base, TOKEN_B);
  await page.locator('#status', { hasText: /^Connected\./ }).waitFor();
  // A slow answer (as from a busy worker) keeps each refresh under way for a while.
  const asked: string[] = [];
  await page.route('**/api/stats', async (route) => {
    asked.push(route.request().headers().authorization ?? '');
    await new Promise((r) => setTimeout(r, 700));
    await route.continue();
  });
  await page.waitForRequest('**/api/stats');
  await page.click('#logout');
  const after = asked.length;
  await page.waitForTimeout(2_500);
  assert.equal(await page.locator('#main').isVisible(), false, 'the page stays hidden');
  assert.equal(await page.locator('#status').textContent(), 'Token forgotten.');
  assert.deepEqual(asked.slice(after), [], 'no request after the token was forgotten');
  assert.deepEqual(problems, []);
});

test('the chart takes no rate from totals that cover other workers than the previous ones', async (t) => {
  const TOKEN_C = 'status-page-token-0003';
  const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0, api_token: TOKEN_C } });
  t.after(() => gw.close());
  // /api/stats as a primary with two workers answers it: 1 KiB/s of traffic, and in the third
  // answer one worker (which had relayed 1 GiB) late, left out, then back in the fourth.
  const GIB = 2 ** 30;
  const t0 = Date.now();
  let n = 0;
  const { page, problems } = await openPage(t, adminClient(gw.gw).base, TOKEN_C, (p) =>
    p.route('**/api/stats', async (route) => {
      const i = n++;
      const late = i === 2;
      const bytes = i * 1024 + (late ? 0 : GIB);
      await route.fulfill({
        status: 200,
        headers: { 'content-type': 'application/json', 'x-socksgate-workers': late ? '1/2' : '2/2' },
        body: JSON.stringify({ time: t0 + i * 1000, connections: { open: 0, finished: 0 }, bytes: { up: bytes, down: bytes }, rules: [] }),
      });
    }),
  );
  const shown = new Set<string>();
  while (n < 6) {
    shown.add((await page.locator('#rate').textContent()) ?? '');
    await page.waitForTimeout(100);
  }
  shown.delete('');
  assert.deepEqual([...shown], ['1.0 KiB/s up, 1.0 KiB/s down']);
  assert.deepEqual(problems, []);
});

test('strings from clients and configs are shown as text: no markup from them runs, even with the CSP bypassed', async (t) => {
  const TOKEN_D = 'status-page-token-0004';
  const payload = (tag: string): string => `<img src=x onerror="window.__pwned=(window.__pwned||[]).concat('${tag}')">`;
  const gw = await startGateway({
    metrics: { host: '127.0.0.1', port: 0, api_token: TOKEN_D },
    auth: { users: [{ username: 'crawler', password: 'page-user-secret' }] },
    // Enough failures allowed that each wrong login is held for its delay, never blocked outright.
    limits: { auth_failures: { max: 1000, window: '1m', block: '1m' } },
    // A username with a password is shown in the member's name (one without is masked): the markup rides in it.
    upstreams: { crawl: { type: 'pool', members: [`socks5://${encodeURIComponent(payload('member'))}:pw@127.0.0.65:1080`] } },
  });
  // Torn down in this order: the pages stop polling and the logins stop before the gateway
  // closes, so that nothing is left dialing it once it is gone.
  const browsers: Browser[] = [];
  t.after(async () => {
    attacking = false;
    await attacks;
    await Promise.all(browsers.map((b) => b.close()));
    await gw.close();
  });
  // Wrong logins, one after another from one address: each waits out a growing delay with its
  // name listed in /api/connections, as an attacker without a password can make it.
  let attacking = true;
  const login = async (name: string): Promise<void> => {
    const s = createConnection({ host: '127.0.0.1', port: gw.port });
    s.on('error', () => {});
    const u = Buffer.from(name);
    s.write(Buffer.concat([Buffer.from([5, 1, 2, 1, u.length]), u, Buffer.from([1, 0x78])]));
    await Promise.race([once(s, 'close'), new Promise((r) => setTimeout(r, 5_000))]);
    s.destroy();
  };
  const attacks = Promise.all(
    [payload('user'), `crawler-session-${payload('session')}`].map(async (name) => {
      while (attacking) await login(name);
    }),
  );

  for (const bypassCSP of [false, true]) {
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, timeout: 60_000 });
    browsers.push(browser);
    const page = await (await browser.newContext({ bypassCSP })).newPage();
    page.setDefaultTimeout(20_000);
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    // Every string column of the connections table gets markup too: destination, rule, member, client.
    await page.route('**/api/connections', async (route) => {
      // A poll that outlives the gateway (teardown) has nothing to forge.
      const answer = await route.fetch().catch(() => undefined);
      if (!answer) return route.abort().catch(() => {});
      const real = (await answer.json()) as Array<Record<string, unknown>>;
      const forged = { ...real[0], id: 99, client: payload('client'), destination: payload('dest'), rule: payload('rule'), member: payload('row-member'), command: payload('cmd'), protocol: payload('proto') };
      await route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify([...real, ...(real.length ? [forged] : [])]) });
    });
    const res = await page.goto(`${adminClient(gw.gw).base}/`);
    const headers = res!.headers();
    assert.match(headers['content-security-policy'] ?? '', /script-src 'self'(;|$)/);
    assert.match(headers['content-security-policy'] ?? '', /frame-ancestors 'none'/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    await page.fill('#token', TOKEN_D);
    await page.click('#login button[type=submit]');
    await page.locator('td.member', { hasText: 'onerror' }).waitFor();
    await page.locator('#connections td', { hasText: payload('user') }).first().waitFor();
    await page.locator('#connections td', { hasText: payload('session') }).first().waitFor();
    await page.locator('#connections td', { hasText: payload('dest') }).first().waitFor();
    await page.waitForTimeout(1_500); // a few more refreshes
    const ran = await page.evaluate('window.__pwned ?? []');
    const elements = await page.locator('main img, main script, main svg').count();
    assert.deepEqual({ ran, elements, dialogs }, { ran: [], elements: 0, dialogs: [] }, `bypassCSP: ${bypassCSP}`);
  }
});

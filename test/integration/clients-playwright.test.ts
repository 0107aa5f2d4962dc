// Playwright (playwright-core driving Debian's Chromium) with a per-context HTTP proxy and
// credentials: the crawler case SOCKS5 cannot serve (Chromium sends no SOCKS credentials).
// Two contexts with session keys that a second gateway (its members listed in another order)
// sends to two different members each land on that member, and stay there page after page.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { chromium, type BrowserContext } from 'playwright-core';
import { startGateway } from '../helpers/index.js';
import { poolDestination, poolGateway, throughPool } from '../helpers/pool.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CHROMIUM, CHROMIUM_ARGS, startHttpsServer, startRecordingHttpServer, tempDir, type RecordingHttpServer } from '../helpers/clients.js';
import { startMicrosocks, type RunningUpstream } from '../helpers/upstreams.js';

const PASSWORD = 'pw-playwright-1';
/** Members on their own loopback addresses (each binds its outgoing side there too). */
const MEMBER_HOSTS = ['127.0.0.151', '127.0.0.152', '127.0.0.153', '127.0.0.154'];

/** Answers every page with the address the request came from: the member that carried it. */
function peerPage(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end(`<!doctype html><title>${req.url ?? ''}</title><p id="peer">${req.socket.remoteAddress ?? ''}</p>`);
}

function startPeerEcho(): Promise<RecordingHttpServer> {
  return startRecordingHttpServer(peerPage);
}

test('Playwright contexts with two session keys stay each on the sticky member its key is sent to', async (t) => {
  const tmp = await tempDir('playwright');
  t.after(() => tmp.remove());
  const members: RunningUpstream[] = [];
  for (const host of MEMBER_HOSTS) {
    const m = await startMicrosocks({ host });
    t.after(() => m.close());
    members.push(m);
  }
  // One origin per context, so each access-log line tells which context it belongs to.
  const origins = { K1: await startPeerEcho(), K2: await startPeerEcho() };
  t.after(() => origins.K1.close());
  t.after(() => origins.K2.close());
  const tls = await startHttpsServer(tmp.dir, peerPage);
  t.after(() => tls.close());
  const gw = await startGateway({
    auth: { users: [{ username: 'alice', password: PASSWORD }] },
    upstreams: { crawl: { type: 'pool', strategy: 'sticky', members: members.map((m) => `socks5://${m.host}:${m.port}`) } },
    rules: [{ name: 'crawler', users: ['alice'], action: 'crawl' }],
    default: 'block',
  });
  t.after(() => gw.close());

  // Where each key goes, learnt through another gateway, its members in reverse order, by
  // SOCKS5: two keys it sends to different members (a pool ignoring the key has none).
  const other = await poolGateway(t, { strategy: 'sticky', members: members.map((m) => `socks5://${m.host}:${m.port}`).reverse() });
  const seenBy = await poolDestination(t);
  const landed = new Map<string, string>(); // member host → the first key sent there
  for (let k = 1; k <= 16 && landed.size < 2; k++) {
    const host = await throughPool(other, seenBy, `alice-session-K${k}`);
    assert.equal(typeof host, 'string', `K${k}: ${host}`);
    if (!landed.has(host as string)) landed.set(host as string, `K${k}`);
  }
  assert.equal(landed.size, 2, 'sixteen session keys all on one member');
  const [[host1, key1], [host2, key2]] = [...landed] as [[string, string], [string, string]];
  const memberAt = (host: string): string => {
    const m = members.find((x) => x.host === host);
    assert.ok(m, host);
    return `socks5://${m.host}:${m.port}`;
  };
  const sessions = { K1: key1, K2: key2 };
  const expected = { K1: memberAt(host1), K2: memberAt(host2) };
  t.diagnostic(`${key1} → ${expected.K1}, ${key2} → ${expected.K2}`);
  const hostOf = (member: string): string => new URL(member).hostname;

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS], timeout: 60_000 });
  t.after(() => browser.close());
  // playwright-core puts <-loopback> in a context's proxy bypass list itself, so 127.0.0.1 is
  // proxied; Chromium answers the gateway's 407 with the context's credentials.
  const contexts: Record<'K1' | 'K2', BrowserContext> = {
    K1: await browser.newContext({ proxy: { server: `http://127.0.0.1:${gw.port}`, username: `alice-session-${sessions.K1}`, password: PASSWORD }, ignoreHTTPSErrors: true }),
    K2: await browser.newContext({ proxy: { server: `http://127.0.0.1:${gw.port}`, username: `alice-session-${sessions.K2}`, password: PASSWORD }, ignoreHTTPSErrors: true }),
  };
  const pages = { K1: await contexts.K1.newPage(), K2: await contexts.K2.newPage() };
  for (const p of Object.values(pages)) p.setDefaultTimeout(30_000);

  // Interleaved loads, each context several times.
  for (let i = 0; i < 3; i++) {
    for (const key of ['K1', 'K2'] as const) {
      const res = await pages[key].goto(`${origins[key].url}/${key}/${i}`);
      assert.equal(res?.status(), 200, `${key} load ${i}`);
      assert.equal(await pages[key].textContent('#peer'), hostOf(expected[key]), `${key} load ${i} came from its member`);
    }
  }

  // https:// through CONNECT: Chromium retries the tunnel with credentials after the 407.
  for (const key of ['K1', 'K2'] as const) {
    const res = await pages[key].goto(`${tls.url}/${key}/secure`);
    assert.equal(res?.status(), 200, `${key} https load`);
    assert.equal(await pages[key].textContent('#peer'), hostOf(expected[key]), `${key} https load came from its member`);
  }
  // A tunnel is logged when it closes: close the contexts, so every connection ends.
  await contexts.K1.close();
  await contexts.K2.close();
  const tunnels = (): Array<Record<string, unknown>> =>
    gw.logs.filter((l) => l.msg === 'session end' && l.dest === `127.0.0.1:${tls.port}` && l.status === 200);
  await gw.accessLog(() => tunnels().length >= 2, 10_000);
  assert.deepEqual(new Set(tunnels().map((l) => l.member)), new Set([expected.K1, expected.K2]));
  const securePages = tls.seen.filter((s) => s.url.endsWith('/secure'));
  assert.deepEqual(
    securePages.map((s) => `${s.url} ${s.peer}`),
    [`/K1/secure ${hostOf(expected.K1)}`, `/K2/secure ${hostOf(expected.K2)}`],
  );

  for (const key of ['K1', 'K2'] as const) {
    const origin = origins[key];
    const pageLoads = origin.seen.filter((s) => s.url.startsWith(`/${key}/`));
    assert.equal(pageLoads.length, 3, `${key}: three page loads reached the origin`);
    // Everything that reached this origin (favicon included) came through the one member.
    assert.deepEqual([...new Set(origin.seen.map((s) => s.peer))], [hostOf(expected[key])]);
    const dest = `127.0.0.1:${origin.port}`;
    const served = (): Array<Record<string, unknown>> => gw.logs.filter((l) => l.msg === 'session end' && l.dest === dest && l.status === 200);
    await gw.accessLog(() => served().length >= origin.seen.length, 5_000);
    const lines = served();
    assert.equal(lines.length, origin.seen.length, `${key}: one access-log line per request`);
    for (const l of lines) {
      assert.equal(l.protocol, 'http');
      assert.equal(l.user, 'alice');
      assert.equal(l.outbound, 'crawl');
      assert.equal(l.member, expected[key], `${key} stays on ${expected[key]}`);
    }
  }
  assert.ok(!JSON.stringify(gw.logs).includes(PASSWORD), 'no password in the logs');
});

// An HTTP client through a proxy that is down or refuses our login: the 502 or 504 says the
// upstream proxy failed, not the site. A crawler's dead provider proxies (refused, silent, a
// pool with every member ejected) must not read as "connection refused" or "connect timeout"
// from the site it crawls.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { curl } from '../helpers/curl.js';
import { closedPort, startGateway, startHttpServer } from '../helpers/index.js';
import { startHeldListener } from '../helpers/instruments.js';
import { startMicrosocks, startTinyproxy } from '../helpers/upstreams.js';

test('HTTP clients are told when the upstream proxy, not the site, refused, stayed silent, or left a pool with no usable member', async (t) => {
  const site = await startHttpServer();
  t.after(() => site.close());
  const held = await startHeldListener();
  t.after(() => held.close());
  const hop = await startMicrosocks({ host: '127.0.0.1', user: 'gw', pass: 'right' });
  t.after(() => hop.close());
  const tiny = await startTinyproxy({ host: '127.0.0.1', user: 'gw', pass: 'right' });
  t.after(() => tiny.close());
  const [a, b, corp] = [await closedPort(), await closedPort(), await closedPort()];
  const gw = await startGateway({
    upstreams: {
      crawl: { type: 'pool', strategy: 'round-robin', ban_after: 1, members: [`socks5://127.0.0.1:${a}`, `http://127.0.0.1:${b}`] },
      corp: { type: 'socks5', host: '127.0.0.1', port: corp },
      mute: { type: 'socks5', host: '127.0.0.1', port: held.port },
      hop: { type: 'socks5', host: '127.0.0.1', port: hop.port, username: 'gw', password: 'wrong' },
      far: { type: 'socks5', host: '127.0.0.1', port: corp, via: 'hop' },
      web: { type: 'http', host: '127.0.0.1', port: tiny.port, username: 'gw', password: 'wrong' },
    },
    rules: [
      { name: 'corp', cidrs: ['127.0.0.2/32'], action: 'corp' },
      { name: 'mute', cidrs: ['127.0.0.3/32'], action: 'mute' },
      { name: 'far', cidrs: ['127.0.0.4/32'], action: 'far' },
      { name: 'hop', cidrs: ['127.0.0.5/32'], action: 'hop' },
      { name: 'web', cidrs: ['127.0.0.6/32'], action: 'web' },
    ],
    default: 'crawl',
    limits: { connect_timeout: '300ms' },
  });
  t.after(() => gw.close());
  const through = async (url: string, connect = false): Promise<string> =>
    (await curl(['-w', connect ? '\n%{http_connect}' : '\n%{http_code}', '-x', `http://127.0.0.1:${gw.port}`, ...(connect ? ['-p'] : []), url])).stdout;

  // Both members refuse: each is tried (and ejected), and the answer names the proxy.
  assert.equal(await through(`${site.url}/a`), 'upstream proxy unreachable: connection refused\n\n502');
  // Every member is out of rotation now: no dial at all.
  assert.equal(await through(`${site.url}/b`), 'no usable pool member\n\n502');
  // A lone upstream, by CONNECT too (curl prints no body for a refused CONNECT: the log line says it).
  assert.equal(await through(`http://127.0.0.2:${site.port}/c`), 'upstream proxy unreachable: connection refused\n\n502');
  assert.match(await through(`http://127.0.0.2:${site.port}/d`, true), /\n502$/);
  // Took the connection, never answered the greeting: 504, as a timeout, but the proxy's.
  assert.equal(await through(`http://127.0.0.3:${site.port}/e`), 'upstream proxy did not answer\n\n504');
  // The hop before it refused our login: not reached, and no reply code says more.
  assert.equal(await through(`http://127.0.0.4:${site.port}/f`), 'upstream proxy unreachable\n\n502');
  // The proxy refused our login (an expired provider password, or a -country- value it does
  // not know filled into the member's username): said so, by SOCKS5 and HTTP proxies alike.
  assert.equal(await through(`http://127.0.0.5:${site.port}/g`), 'upstream proxy refused the login\n\n502');
  assert.equal(await through(`http://127.0.0.6:${site.port}/h`), 'upstream proxy refused the login\n\n502');
});

// Absolute-form HTTP requests routed to an upstream rather than direct: the upstream's
// stream is handed over paused (early bytes kept in it), and node's HTTP client must still
// read the origin's response from it.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { curl } from '../helpers/curl.js';
import { startGateway } from '../helpers/index.js';
import { startRecordingHttpServer } from '../helpers/clients.js';
import { startMicrosocks } from '../helpers/upstreams.js';

test('curl -x http:// absolute-form through a socks5 upstream gets the origin response', async (t) => {
  const origin = await startRecordingHttpServer((req, res) => res.end(`from ${req.socket.remoteAddress ?? ''} ${req.url ?? ''}\n`));
  t.after(() => origin.close());
  const up = await startMicrosocks({ host: '127.0.0.155' });
  t.after(() => up.close());
  const gw = await startGateway({ upstreams: { up: { type: 'socks5', host: up.host, port: up.port } }, default: 'up' });
  t.after(() => gw.close());
  const r = await curl(['-x', `http://127.0.0.1:${gw.port}`, `${origin.url}/one`, `${origin.url}/two`], 10_000);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'from 127.0.0.155 /one\nfrom 127.0.0.155 /two\n');
  const line = await gw.accessLog((l) => l.protocol === 'http' && l.outbound === 'up' && l.status === 200);
  assert.equal(line?.rep, 0);
});

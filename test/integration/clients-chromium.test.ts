// Headless Chromium (Debian's /usr/bin/chromium) with --proxy-server=http://… loading pages
// through the HTTP front: the document absolute-form, a script from an https:// origin
// through CONNECT. Chromium never proxies loopback unless told (<-loopback>).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startGateway } from '../helpers/index.js';
import { CHROMIUM, CHROMIUM_ARGS, cleanEnv, runProcess, startHttpsServer, startRecordingHttpServer, tempDir } from '../helpers/clients.js';

test('chromium --headless --dump-dom through --proxy-server=http://: a page and its https:// script', async (t) => {
  const tmp = await tempDir('chromium');
  t.after(() => tmp.remove());
  const tls = await startHttpsServer(tmp.dir, (_req, res) => {
    res.setHeader('content-type', 'text/javascript');
    res.end('document.getElementById("tls").textContent = "script over CONNECT ran";');
  });
  t.after(() => tls.close());
  const web = await startRecordingHttpServer((req, res) => {
    if (req.url !== '/page') {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(
      '<!doctype html><title>through socksgate</title><p id="js">static</p><p id="tls">not loaded</p>' +
        '<script>document.getElementById("js").textContent = "rendered " + location.pathname;</script>' +
        `<script src="${tls.url}/app.js"></script>`,
    );
  });
  t.after(() => web.close());
  const gw = await startGateway();
  t.after(() => gw.close());

  const r = await runProcess(
    CHROMIUM,
    [
      '--headless',
      ...CHROMIUM_ARGS,
      `--user-data-dir=${join(tmp.dir, 'profile')}`,
      `--proxy-server=http://127.0.0.1:${gw.port}`,
      '--proxy-bypass-list=<-loopback>',
      '--ignore-certificate-errors', // the https origin's certificate was made by this test
      '--dump-dom',
      `${web.url}/page`,
    ],
    { timeoutMs: 90_000, env: cleanEnv(tmp.dir) },
  );
  assert.equal(r.code, 0, `chromium exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.slice(-2000)}`);
  assert.match(r.stdout, /<p id="js">rendered \/page<\/p>/);
  assert.match(r.stdout, /<p id="tls">script over CONNECT ran<\/p>/);
  assert.ok(web.seen.some((s) => s.url === '/page'));
  assert.deepEqual(
    tls.seen.map((s) => s.url),
    ['/app.js'],
  );

  const page = await gw.accessLog((l) => l.dest === `127.0.0.1:${web.port}` && l.status === 200, 5_000);
  assert.equal(page?.protocol, 'http');
  assert.equal(page?.rep, 0);
  const tunnel = await gw.accessLog((l) => l.dest === `127.0.0.1:${tls.port}`, 5_000);
  assert.equal(tunnel?.protocol, 'http');
  assert.equal(tunnel?.status, 200);
  assert.ok(Number(tunnel?.down) > 0);
  // Every origin request Chromium made is in the access log: nothing went around the gateway.
  const forwarded = (): number => gw.logs.filter((l) => l.msg === 'session end' && l.dest === `127.0.0.1:${web.port}`).length;
  await gw.accessLog(() => forwarded() >= web.seen.length, 5_000);
  assert.equal(forwarded(), web.seen.length);
});

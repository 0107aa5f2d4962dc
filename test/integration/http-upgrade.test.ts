// Absolute-form requests that offer to switch protocols (Upgrade: a WebSocket handshake, curl's
// h2c offer with --http2): node's parser stops at such a request, and what the client sent
// behind it in the same read must still be served, not dropped.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { startRecordingHttpServer, type RecordingHttpServer } from '../helpers/clients.js';
import { closedWithin, startGateway, type TestGateway } from '../helpers/index.js';

/** A real web server answering "got METHOD PATH BODY" and a gateway in front of it, both closed after the test. */
async function webBehindGateway(t: TestContext): Promise<{ web: RecordingHttpServer; gw: TestGateway }> {
  const web = await startRecordingHttpServer((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => res.end(`got ${req.method ?? ''} ${req.url ?? ''} ${body}\n`));
  });
  t.after(() => web.close());
  const gw = await startGateway();
  t.after(() => gw.close(), { timeout: 10_000 });
  return { web, gw };
}

/** Writes `raw` in one write and collects what comes back until the gateway closes (or `ms` pass). */
async function exchange(port: number, raw: string, t: TestContext, ms = 5_000): Promise<string> {
  const s = connect({ host: '127.0.0.1', port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.write(raw, 'latin1');
  await closedWithin(s, ms);
  return Buffer.concat(chunks).toString('latin1');
}

test('the body of a request pipelined behind an Upgrade offer reaches its origin as that body, never as a request of its own', async (t) => {
  const { web, gw } = await webBehindGateway(t);
  const host = `127.0.0.1:${web.port}`;
  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  // A complete request as the second one's body, sent in a read of its own.
  const body = `GET ${web.url}/smuggled HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
  s.write(
    `GET ${web.url}/offer HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n` +
      `POST ${web.url}/second HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    'latin1',
  );
  for (let waited = 0; web.seen.length === 0 && waited < 5_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  s.write(body, 'latin1');
  await closedWithin(s, 5_000);
  assert.deepEqual(web.seen.map((r) => `${r.method} ${r.url}`), ['GET /offer', 'POST /second'], 'the second request, with its body; nothing else');
  assert.match(Buffer.concat(chunks).toString('latin1'), /got POST \/second GET /, 'its body arrived whole');
});

for (const [what, offer] of [
  ['a WebSocket handshake', 'GET {URL}/ws HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'],
  // As curl --http2 -d hello sends it through a proxy.
  ['an h2c offer with a body', 'POST {URL}/post HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello'],
] as const) {
  test(`a request pipelined behind ${what} is served in its turn, not dropped`, async (t) => {
    const { web, gw } = await webBehindGateway(t);
    const host = `127.0.0.1:${web.port}`;
    const first = offer.replaceAll('{URL}', web.url).replaceAll('{HOST}', host);
    const second = `GET ${web.url}/second HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    const answer = await exchange(gw.port, first + second, t);
    const statuses = [...answer.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [200, 200], `both answered: ${answer}`);
    assert.match(answer, /got (GET \/ws |POST \/post hello)\n[\s\S]*got GET \/second \n/, 'each answer is its own, in order');
    assert.deepEqual(web.seen.map((r) => r.url), [first.includes('/ws') ? '/ws' : '/post', '/second'], 'both reached the origin');
    assert.equal(web.seen[0]!.headers.upgrade, undefined, 'Upgrade is hop-by-hop: not forwarded');
  });
}

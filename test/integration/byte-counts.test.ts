// The access log's byte counts are the client's payload, exactly: early data pipelined behind
// the request included, the handshake with an upstream excluded, and the bytes an upstream
// sent together with its reply included. Counted the same way direct, through a SOCKS5
// upstream (microsocks), through an HTTP upstream (tinyproxy), and through an https:// one
// (tinyproxy behind a TLS terminator: the relay's one TLS side).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cmd } from '../../src/protocol/constants.js';
import { decodeReply, encodeGreeting, encodeRequest, NEED_DATA } from '../../src/protocol/messages.js';
import { curl } from '../helpers/curl.js';
import { rawClient, startGateway } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';
import { makePki, startMicrosocks, startTinyproxy, startTlsTerminator } from '../helpers/upstreams.js';

const BANNER = '220 ready\r\n';

/** A destination that speaks first (SMTP-style banner), then echoes until the client's end. */
async function bannerEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.write(BANNER);
    s.pipe(s);
  });
  return listenTracked(server);
}

/**
 * Greeting, CONNECT and `early` in one write; then `more` once the reply is in; FIN once
 * `expect` bytes came back (microsocks does not half-close: a FIN sent earlier would cut the
 * echo short). Returns every byte that came back after the reply.
 */
async function session(gwPort: number, destPort: number, early: Buffer, more: Buffer, expect: number): Promise<Buffer> {
  const s = await rawClient(gwPort);
  s.write(Buffer.concat([encodeGreeting([0]), encodeRequest(Cmd.CONNECT, { host: '127.0.0.1', port: destPort }), early]));
  const chunks: Buffer[] = [];
  let replied = false;
  return new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no end within 10 s')), 10_000);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      if (replied) {
        if (chunks.reduce((n, b) => n + b.length, 0) >= expect) s.end();
        return;
      }
      const all = Buffer.concat(chunks);
      if (all.length < 2) return;
      const reply = decodeReply(all.subarray(2));
      if (reply === NEED_DATA) return;
      if (reply.value.rep !== 0) return reject(new Error(`reply ${reply.value.rep}`));
      replied = true;
      chunks.length = 0;
      chunks.push(all.subarray(2 + reply.size));
      s.write(more);
    });
    s.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    s.on('error', reject);
  });
}

test('up and down are the payloads exactly: direct, through SOCKS5, HTTP and https upstreams', async (t) => {
  const viaSocks = await bannerEcho();
  t.after(() => viaSocks.close());
  const viaHttp = await bannerEcho();
  t.after(() => viaHttp.close());
  const viaHttps = await bannerEcho();
  t.after(() => viaHttps.close());
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-counts-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const pki = await makePki(dir, { names: ['proxy.test'], ips: ['127.0.0.63'] });
  const direct = await bannerEcho();
  t.after(() => direct.close());
  const micro = await startMicrosocks({ host: '127.0.0.61' });
  t.after(() => micro.close());
  const tiny = await startTinyproxy({ host: '127.0.0.62', user: 'u', pass: 'p' });
  t.after(() => tiny.close());
  const tls = await startTlsTerminator('127.0.0.63', pki, tiny);
  t.after(() => tls.close());
  const gw = await startGateway({
    upstreams: {
      socks: { type: 'socks5', host: micro.host, port: micro.port },
      http: { type: 'http', host: tiny.host, port: tiny.port, username: 'u', password: 'p' },
      https: { type: 'http', host: tls.host, port: tls.port, username: 'u', password: 'p', tls: true, ca: pki.caFile, servername: 'proxy.test' },
    },
    rules: [
      { name: 'via-socks', ports: [viaSocks.port], action: 'socks' },
      { name: 'via-http', ports: [viaHttp.port], action: 'http' },
      { name: 'via-https', ports: [viaHttps.port], action: 'https' },
    ],
    default: 'direct',
  });
  t.after(() => gw.close());

  const early = Buffer.from('EHLO pipelined\r\n');
  const more = Buffer.alloc(300_000, 0x61);
  const want = BANNER + early.toString('latin1') + more.toString('latin1');
  for (const [rule, port] of [['via-socks', viaSocks.port], ['via-http', viaHttp.port], ['via-https', viaHttps.port], ['default', direct.port]] as const) {
    const back = await session(gw.port, port, early, more, want.length);
    assert.equal(back.length, want.length, `${rule}: every byte back`);
    assert.equal(back.toString('latin1'), want, `${rule}: banner first, then the echo in order`);
    const line = await gw.accessLog((l) => l.cmd === 'connect' && l.rule === rule);
    assert.ok(line, `${rule}: logged`);
    assert.equal(line.up, early.length + more.length, `${rule}: up is the early data and the rest, no handshake bytes`);
    assert.equal(line.down, BANNER.length + early.length + more.length, `${rule}: down is the banner and the echo, no upstream reply bytes`);
  }
});

const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello';

/** An origin that reads one request head, counts its bytes, answers RESPONSE and closes. */
async function countingOrigin(): Promise<{ port: number; received: number[]; close(): Promise<void> }> {
  const received: number[] = [];
  const server = createServer((s) => {
    s.on('error', () => {});
    let head = '';
    s.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      received.push(head.length);
      s.end(RESPONSE);
    });
  });
  return { received, ...(await listenTracked(server)) };
}

test('absolute-form HTTP requests: up and down are what crossed to and from the origin, direct or through SOCKS5 and HTTP upstreams', async (t) => {
  const micro = await startMicrosocks({ host: '127.0.0.61' });
  t.after(() => micro.close());
  const tiny = await startTinyproxy({ host: '127.0.0.62', user: 'u', pass: 'p' });
  t.after(() => tiny.close());
  const origins = { 'via-socks': await countingOrigin(), 'via-http': await countingOrigin(), default: await countingOrigin() };
  for (const o of Object.values(origins)) t.after(() => o.close());
  const gw = await startGateway({
    upstreams: {
      socks: { type: 'socks5', host: micro.host, port: micro.port },
      http: { type: 'http', host: tiny.host, port: tiny.port, username: 'u', password: 'p' },
    },
    rules: [
      { name: 'via-socks', ports: [origins['via-socks'].port], action: 'socks' },
      { name: 'via-http', ports: [origins['via-http'].port], action: 'http' },
    ],
    default: 'direct',
  });
  t.after(() => gw.close());

  for (const [rule, origin] of Object.entries(origins)) {
    const r = await curl(['-s', '-x', `http://127.0.0.1:${gw.port}`, `http://127.0.0.1:${origin.port}/counted`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello');
    const line = await gw.accessLog((l) => l.protocol === 'http' && l.rule === rule);
    assert.ok(line, `${rule}: logged`);
    assert.equal(line.up, origin.received[0], `${rule}: up is the request the origin got, no upstream handshake bytes`);
    assert.equal(line.down, RESPONSE.length, `${rule}: down is the origin's response, no upstream reply bytes`);
  }
});

import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { pino } from 'pino';
import { createResolver } from '../../src/dns/resolver.js';
import { createHttpOutbound } from '../../src/outbound/http.js';
import type { OutboundContext } from '../../src/outbound/types.js';
import { listenTracked } from '../helpers/servers.js';

const log = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
const ctx = (): OutboundContext => ({ signal: new AbortController().signal, log, sessionKey: 'k' });

const USER = 'gw';
const PASSWORD = 'S3cr:et@ü';
const TOKEN = Buffer.from(`${USER}:${PASSWORD}`, 'utf8').toString('base64');

/** A proxy that refuses CONNECT with a reason phrase and X-Squid-Error repeating what it got. */
async function startEchoingRefuser(echo: (got: string) => string): Promise<{ port: number; close(): Promise<void> }> {
  const srv = createServer((s: Socket) => {
    let got = '';
    s.on('error', () => {});
    s.on('data', (b: Buffer) => {
      got += b.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      const said = echo(got);
      s.end(`HTTP/1.1 407 bad credentials ${said}\r\nX-Squid-Error: ERR_CACHE_ACCESS_DENIED ${said}\r\nContent-Length: 0\r\n\r\n`, 'latin1');
    });
  });
  return listenTracked(srv, '127.0.0.1');
}

test('an HTTP proxy whose refusal repeats our credentials: the error keeps the status but never the password or its Basic token', async (t) => {
  const echoes: [string, (got: string) => string][] = [
    ['the Basic token', (got) => /proxy-authorization: basic (\S+)/i.exec(got)?.[1] ?? 'none'],
    ['the decoded pair', () => Buffer.from(`${USER}:${PASSWORD}`, 'utf8').toString('latin1')],
    ['the password percent-encoded', () => encodeURIComponent(PASSWORD)],
  ];
  for (const [what, echo] of echoes) {
    const proxy = await startEchoingRefuser(echo);
    t.after(() => proxy.close());
    const out = createHttpOutbound('corp', { type: 'http', tls: false, remote_dns: true, host: '127.0.0.1', port: proxy.port, username: USER, password: PASSWORD }, { dns, connectTimeout: 2_000 });
    const err = await out.connect({ host: '127.0.0.1', port: 9 }, ctx()).then(
      () => assert.fail('a 407 opened a tunnel'),
      (e: unknown) => e as Error,
    );
    const text = `${err.message} ${String((err.cause as Error | undefined)?.message)}`;
    assert.match(err.message, /answered CONNECT with 407/, what);
    for (const secret of [TOKEN, PASSWORD, Buffer.from(PASSWORD, 'utf8').toString('latin1'), encodeURIComponent(PASSWORD)]) {
      assert.ok(!text.includes(secret), `${what}: ${text}`);
    }
  }
});

test('a short password is not found inside ordinary words: a proxy\'s own refusal text is logged as it was written', async (t) => {
  // A one-character password is in almost any text ("x" in "Proxy"); the whole phrase was withheld.
  for (const [username, password] of [[USER, 'x'], [undefined, 'x'], ['', 'e']] as const) {
    const proxy = await startEchoingRefuser(() => 'Proxy Authentication Required');
    t.after(() => proxy.close());
    const out = createHttpOutbound('corp', { type: 'http', tls: false, remote_dns: true, host: '127.0.0.1', port: proxy.port, username, password }, { dns, connectTimeout: 2_000 });
    const err = await out.connect({ host: '127.0.0.1', port: 9 }, ctx()).then(
      () => assert.fail('a 407 opened a tunnel'),
      (e: unknown) => e as Error,
    );
    assert.equal(err.message.includes('bad credentials Proxy Authentication Required'), true, `${String(username)}/${password}: ${err.message}`);
  }
});

test('a short password repeated as a word of its own is still withheld', async (t) => {
  const proxy = await startEchoingRefuser(() => 'for gw:x');
  t.after(() => proxy.close());
  const out = createHttpOutbound('corp', { type: 'http', tls: false, remote_dns: true, host: '127.0.0.1', port: proxy.port, username: USER, password: 'x' }, { dns, connectTimeout: 2_000 });
  const err = await out.connect({ host: '127.0.0.1', port: 9 }, ctx()).then(
    () => assert.fail('a 407 opened a tunnel'),
    (e: unknown) => e as Error,
  );
  assert.match(err.message, /answered CONNECT with 407 \(withheld/);
});

test("a withheld X-Squid-Error still gives its reply code: squid's ERR_CONNECT_FAIL 111 is 0x05 whatever the password", async (t) => {
  // The password 111 is in squid's detail, so the log gets it withheld; the reply is read before.
  const srv = createServer((s: Socket) => {
    s.on('error', () => {});
    s.once('data', () => s.end('HTTP/1.1 503 Service Unavailable\r\nX-Squid-Error: ERR_CONNECT_FAIL 111\r\nContent-Length: 0\r\n\r\n'));
  });
  const proxy = await listenTracked(srv, '127.0.0.1');
  t.after(() => proxy.close());
  const out = createHttpOutbound('corp', { type: 'http', tls: false, remote_dns: true, host: '127.0.0.1', port: proxy.port, username: USER, password: '111' }, { dns, connectTimeout: 2_000 });
  const err = await out.connect({ host: '127.0.0.1', port: 9 }, ctx()).then(
    () => assert.fail('a 503 opened a tunnel'),
    (e: unknown) => e as Error & { rep?: number },
  );
  assert.ok(!err.message.includes('111'), err.message);
  assert.equal(err.rep, 0x05, err.message);
});

test('an upstream with a password and no username is sent no credentials, so its refusal is logged as written', async (t) => {
  // http://:PASSWORD@host as a member: no Proxy-Authorization goes out (Basic needs a user-id), nothing of it can come back.
  let sent = '';
  const proxy = await startEchoingRefuser((got) => {
    sent = got;
    return 'Proxy Authentication Required';
  });
  t.after(() => proxy.close());
  const out = createHttpOutbound('corp', { type: 'http', tls: false, remote_dns: true, host: '127.0.0.1', port: proxy.port, password: 'Authentication' }, { dns, connectTimeout: 2_000 });
  const err = await out.connect({ host: '127.0.0.1', port: 9 }, ctx()).then(
    () => assert.fail('a 407 opened a tunnel'),
    (e: unknown) => e as Error,
  );
  assert.doesNotMatch(sent, /proxy-authorization/i);
  assert.match(err.message, /answered CONNECT with 407 bad credentials Proxy Authentication Required/);
});

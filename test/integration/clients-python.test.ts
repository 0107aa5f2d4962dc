// Python clients from Debian packages against the HTTP and SOCKS4 fronts: python3-requests
// as an HTTP proxy client (absolute-form for http://, CONNECT for https://, Basic proxy auth
// and its 407), and python3-socks (PySocks) as a second SOCKS4/4a client next to curl.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { startGateway, startHttpServer } from '../helpers/index.js';
import { createServer as createHttpServer, request } from 'node:http';
import type { Socket } from 'node:net';
import { listenTracked } from '../helpers/servers.js';
import { runPython, startHttpsServer, startRecordingHttpServer, tempDir } from '../helpers/clients.js';

// One requests.Session for every request (so http:// requests share a keep-alive connection to
// the proxy); trust_env off so nothing comes from the environment or ~/.netrc.
const REQUESTS_CLIENT = `
import json, sys, requests, urllib3
urllib3.disable_warnings()
out = []
with requests.Session() as s:
    s.trust_env = False
    for r in json.loads(sys.argv[1]):
        proxies = {"http": r["proxy"], "https": r["proxy"]}
        try:
            body = b"b" * r["upload"] if "upload" in r else None
            resp = s.request("POST" if body else "GET", r["url"], data=body, proxies=proxies,
                             verify=r.get("verify", True), timeout=10)
            out.append({"status": resp.status_code, "body": resp.text,
                        "authenticate": resp.headers.get("Proxy-Authenticate")})
        except Exception as e:
            out.append({"error": type(e).__name__, "detail": str(e)})
print(json.dumps(out))
`;

interface RequestsResult {
  status?: number;
  body?: string;
  authenticate?: string | null;
  error?: string;
  detail?: string;
}

async function pythonRequests(home: string, gets: Array<{ url: string; proxy: string; verify?: string | boolean; upload?: number }>): Promise<RequestsResult[]> {
  const r = await runPython(REQUESTS_CLIENT, [JSON.stringify(gets)], { timeoutMs: 60_000, home });
  assert.equal(r.code, 0, `python3-requests exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr}`);
  return JSON.parse(r.stdout) as RequestsResult[];
}

test('python3-requests: http:// goes absolute-form over one keep-alive connection, https:// through CONNECT', async (t) => {
  const tmp = await tempDir('requests');
  t.after(() => tmp.remove());
  const web = await startHttpServer();
  t.after(() => web.close());
  const tls = await startHttpsServer(tmp.dir);
  t.after(() => tls.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  const proxy = `http://127.0.0.1:${gw.port}`;
  const got = await pythonRequests(tmp.dir, [
    { url: `${web.url}/a`, proxy },
    { url: `${web.url}/b?q=1`, proxy },
    { url: `${tls.url}/secure`, proxy, verify: tls.caFile },
    { url: `${web.url}/c`, proxy },
  ]);
  assert.deepEqual(
    got.map((r) => r.status ?? r.error),
    [200, 200, 200, 200],
    JSON.stringify(got),
  );
  assert.match(got[0]!.body!, /^hello \/a from 127\.0\.0\.1/);
  assert.match(got[1]!.body!, /^hello \/b\?q=1 from/);
  assert.equal(got[2]!.body, 'secure /secure\n');
  assert.match(got[3]!.body!, /^hello \/c from/);
  assert.deepEqual(
    tls.seen.map((s) => s.url),
    ['/secure'],
  );

  const tunnel = await gw.accessLog((l) => l.protocol === 'http' && l.dest === `127.0.0.1:${tls.port}`, 5_000);
  assert.equal(tunnel?.status, 200);
  assert.equal(tunnel?.rep, 0);
  assert.ok(Number(tunnel?.down) > 0 && Number(tunnel?.up) > 0, 'TLS bytes went both ways through the tunnel');
  const plainLines = async (): Promise<Array<Record<string, unknown>>> => {
    await gw.accessLog((l) => l.dest === `127.0.0.1:${web.port}` && gw.logs.filter((x) => x.msg === 'session end' && x.dest === `127.0.0.1:${web.port}`).length >= 3, 5_000);
    return gw.logs.filter((l) => l.msg === 'session end' && l.dest === `127.0.0.1:${web.port}`);
  };
  const plain = await plainLines();
  assert.equal(plain.length, 3);
  assert.ok(plain.every((l) => l.protocol === 'http' && l.status === 200 && l.rep === 0));
  assert.equal(new Set(plain.map((l) => l.sid)).size, 1, 'the three http:// requests came on one client connection');
  assert.notEqual(tunnel?.sid, plain[0]!.sid, 'the CONNECT tunnel is a connection of its own');
});

test('python3-requests: a session\'s http:// requests to one origin ride one origin connection, each answered and logged', async (t) => {
  const tmp = await tempDir('requests-reuse');
  t.after(() => tmp.remove());
  const accepted: string[] = [];
  const web = createHttpServer((req, res) => res.end(`${req.url} on connection ${accepted.length}`));
  web.on('connection', (s: Socket) => accepted.push(`${s.remoteAddress}:${s.remotePort}`));
  const { port, close } = await listenTracked(web);
  t.after(close);
  const gw = await startGateway();
  t.after(() => gw.close());
  const proxy = `http://127.0.0.1:${gw.port}`;
  const got = await pythonRequests(tmp.dir, ['/a', '/b', '/c', '/d'].map((path) => ({ url: `http://127.0.0.1:${port}${path}`, proxy })));
  assert.deepEqual(
    got.map((r) => [r.status ?? r.error, r.body]),
    ['/a', '/b', '/c', '/d'].map((path) => [200, `${path} on connection 1`]),
  );
  assert.equal(accepted.length, 1, 'one origin connection');
  await gw.accessLog(() => gw.logs.filter((l) => l.msg === 'session end' && l.dest === `127.0.0.1:${port}`).length >= 4, 5_000);
  const lines = gw.logs.filter((l) => l.msg === 'session end' && l.dest === `127.0.0.1:${port}`);
  assert.equal(lines.length, 4);
  assert.ok(lines.every((l) => l.status === 200 && Number(l.up) > 0 && Number(l.down) > 0));
});

test('python3-requests with proxy auth: alice and alice-session-K1 pass, no or wrong credentials get 407', async (t) => {
  const tmp = await tempDir('requests-auth');
  t.after(() => tmp.remove());
  const web = await startRecordingHttpServer((req, res) => res.end(`origin ${req.url ?? ''}\n`));
  t.after(() => web.close());
  const tls = await startHttpsServer(tmp.dir);
  t.after(() => tls.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'py-pw-1' }] } });
  t.after(() => gw.close());
  const at = (userinfo: string): string => `http://${userinfo}127.0.0.1:${gw.port}`;
  const got = await pythonRequests(tmp.dir, [
    { url: `${web.url}/with-auth`, proxy: at('alice:py-pw-1@') },
    { url: `${tls.url}/session`, proxy: at('alice-session-K1:py-pw-1@'), verify: false },
    { url: `${web.url}/no-auth`, proxy: at('') },
    { url: `${tls.url}/no-auth`, proxy: at(''), verify: false },
    { url: `${web.url}/wrong`, proxy: at('alice:nope@') },
  ]);
  assert.equal(got[0]!.status, 200, JSON.stringify(got[0]));
  assert.equal(got[0]!.body, 'origin /with-auth\n');
  assert.equal(got[1]!.status, 200, JSON.stringify(got[1]));
  assert.equal(got[1]!.body, 'secure /session\n');
  assert.equal(got[2]!.status, 407);
  assert.equal(got[2]!.authenticate, 'Basic realm="socksgate"');
  assert.equal(got[3]!.error, 'ProxyError', JSON.stringify(got[3]));
  assert.match(got[3]!.detail!, /407/);
  assert.equal(got[4]!.status, 407);

  // Only the authenticated requests reached an origin, and the proxy credentials did not.
  assert.deepEqual(
    web.seen.map((s) => s.url),
    ['/with-auth'],
  );
  assert.deepEqual(
    tls.seen.map((s) => s.url),
    ['/session'],
  );
  for (const s of [...web.seen, ...tls.seen]) assert.equal(s.headers['proxy-authorization'], undefined);

  const plain = await gw.accessLog((l) => l.dest === `127.0.0.1:${web.port}` && l.status === 200, 5_000);
  assert.equal(plain?.user, 'alice');
  assert.equal(plain?.protocol, 'http');
  const tunnel = await gw.accessLog((l) => l.dest === `127.0.0.1:${tls.port}` && l.status === 200, 5_000);
  assert.equal(tunnel?.user, 'alice', 'the session parameter is not part of the user');
  const refused = await gw.accessLog((l) => l.status === 407 && gw.logs.filter((x) => x.msg === 'session end' && x.status === 407).length >= 3, 5_000);
  assert.ok(refused, 'three 407 lines (no credentials twice, a wrong password once)');
  const refusals = gw.logs.filter((l) => l.msg === 'session end' && l.status === 407);
  assert.ok(refusals.every((l) => l.rep === 2));
  // No credentials: no user; a wrong password: the name it gave (never the password).
  assert.deepEqual(refusals.map((l) => l.user ?? null).sort(), ['alice', null, null]);
  assert.ok(!JSON.stringify(gw.logs).includes('py-pw-1'), 'no password in the logs');
});

test('python3-requests sends Basic credentials in ISO-8859-1: a non-ASCII name and password log in, as curl\'s UTF-8 ones do', async (t) => {
  const tmp = await tempDir('requests-latin1');
  t.after(() => tmp.remove());
  const web = await startRecordingHttpServer((req, res) => res.end(`origin ${req.url ?? ''}\n`));
  t.after(() => web.close());
  const tls = await startHttpsServer(tmp.dir);
  t.after(() => tls.close());
  const gw = await startGateway({ auth: { users: [{ username: 'jürgen', password: 'pässwört' }] } });
  t.after(() => gw.close());
  // Percent-encoded in the URL as the README shows; requests unquotes and encodes them in ISO-8859-1.
  const proxy = `http://${encodeURIComponent('jürgen-session-K1')}:${encodeURIComponent('pässwört')}@127.0.0.1:${gw.port}`;
  const got = await pythonRequests(tmp.dir, [
    { url: `${web.url}/plain`, proxy },
    { url: `${tls.url}/tunnel`, proxy, verify: false },
    { url: `${web.url}/wrong`, proxy: `http://${encodeURIComponent('jürgen')}:${encodeURIComponent('passwort')}@127.0.0.1:${gw.port}` },
  ]);
  assert.deepEqual(
    got.map((r) => r.status ?? r.error),
    [200, 200, 407],
    JSON.stringify(got),
  );
  assert.equal(got[0]!.body, 'origin /plain\n');
  assert.equal(got[1]!.body, 'secure /tunnel\n');
  const line = await gw.accessLog((l) => l.dest === `127.0.0.1:${web.port}` && l.status === 200, 5_000);
  assert.equal(line?.user, 'jürgen');

  // The same credentials in UTF-8 (curl, Chromium) still pass.
  const utf8 = await fetchThrough(gw.port, `${web.url}/utf8`, Buffer.from('jürgen:pässwört', 'utf8'));
  assert.equal(utf8, 200);
  const latin1 = await fetchThrough(gw.port, `${web.url}/latin1`, Buffer.from('jürgen:pässwört', 'latin1'));
  assert.equal(latin1, 200);
});

test('python3-requests to IPv6 origins: [::1] in absolute-form and in the CONNECT authority; a POST body goes through', async (t) => {
  const tmp = await tempDir('requests-v6');
  t.after(() => tmp.remove());
  const web = await startRecordingHttpServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => res.end(`${req.method ?? ''} ${req.url ?? ''} ${n} bytes from ${req.socket.remoteAddress ?? ''}\n`));
  }, '::1');
  t.after(() => web.close());
  const tls = await startHttpsServer(tmp.dir, undefined, '::1');
  t.after(() => tls.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  const proxy = `http://127.0.0.1:${gw.port}`;
  const got = await pythonRequests(tmp.dir, [
    { url: `${web.url}/six`, proxy },
    { url: `${web.url}/upload`, proxy, upload: 200_000 },
    { url: `${tls.url}/six`, proxy, verify: tls.caFile },
  ]);
  assert.deepEqual(
    got.map((r) => r.body ?? r.error),
    ['GET /six 0 bytes from ::1\n', 'POST /upload 200000 bytes from ::1\n', 'secure /six\n'],
    JSON.stringify(got),
  );
  const forwarded = await gw.accessLog((l) => l.dest === `[::1]:${web.port}` && Number(l.up) > 200_000, 5_000);
  assert.equal(forwarded?.status, 200);
  const tunnel = await gw.accessLog((l) => l.dest === `[::1]:${tls.port}`, 5_000);
  assert.equal(tunnel?.status, 200);
  assert.equal(tunnel?.rep, 0);
});

// PySocks speaks SOCKS4 itself: with rdns and a name it sends SOCKS4a (0.0.0.1 + the name),
// otherwise the IPv4 address; the username goes in the USERID field.
const PYSOCKS_CLIENT = `
import json, sys, socks
port, host, dport, rdns, userid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5] or None
s = socks.socksocket()
s.set_proxy(socks.SOCKS4, "127.0.0.1", port, rdns=rdns, username=userid)
s.settimeout(10)
try:
    s.connect((host, dport))
    s.sendall(b"GET /pysocks HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    print(json.dumps({"ok": True, "response": data.decode("latin1")}))
except socks.ProxyError as e:
    print(json.dumps({"ok": False, "error": type(e).__name__, "detail": str(e)}))
finally:
    s.close()
`;

interface PySocksResult {
  ok: boolean;
  response?: string;
  error?: string;
  detail?: string;
}

async function pySocks4(home: string, port: number, host: string, dport: number, rdns: boolean, userid = ''): Promise<PySocksResult> {
  const r = await runPython(PYSOCKS_CLIENT, [String(port), host, String(dport), rdns ? '1' : '0', userid], { timeoutMs: 30_000, home });
  assert.equal(r.code, 0, `python3-socks exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr}`);
  return JSON.parse(r.stdout) as PySocksResult;
}

test('python3-socks SOCKS4: rdns=True sends the name (4a, resolved by the gateway), rdns=False the address', async (t) => {
  const tmp = await tempDir('pysocks');
  t.after(() => tmp.remove());
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({ dns: { hosts: { 'web.test': '127.0.0.1' } } });
  t.after(() => gw.close());

  const a = await pySocks4(tmp.dir, gw.port, 'web.test', web.port, true, 'crawler');
  assert.ok(a.ok, JSON.stringify(a));
  assert.match(a.response!, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nhello \/pysocks from 127\.0\.0\.1/);
  const named = await gw.accessLog((l) => l.protocol === 'socks4' && l.dest === `web.test:${web.port}`, 5_000);
  assert.equal(named?.rep, 0);
  assert.equal(named?.userid, 'crawler');
  assert.equal(named?.user, undefined, 'USERID is never a user');

  const b = await pySocks4(tmp.dir, gw.port, '127.0.0.1', web.port, false);
  assert.ok(b.ok, JSON.stringify(b));
  assert.match(b.response!, /hello \/pysocks from 127\.0\.0\.1/);
  const plain = await gw.accessLog((l) => l.protocol === 'socks4' && l.dest === `127.0.0.1:${web.port}`, 5_000);
  assert.equal(plain?.rep, 0);
  assert.ok(Number(plain?.down) > 0);
});

test('python3-socks SOCKS4 against a gateway that requires auth: rejected (0x5B), logged as refused', async (t) => {
  const tmp = await tempDir('pysocks-auth');
  t.after(() => tmp.remove());
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw' }] } });
  t.after(() => gw.close());
  for (const rdns of [false, true]) {
    const r = await pySocks4(tmp.dir, gw.port, '127.0.0.1', web.port, rdns, 'alice');
    assert.equal(r.ok, false, JSON.stringify(r));
    // PySocks wraps the SOCKS4 reply in "Socket error: 0x5b: ...".
    assert.match(r.detail!, /0x5b: Request rejected/i, JSON.stringify(r));
  }
  const line = await gw.accessLog((l) => l.protocol === 'socks4', 5_000);
  assert.equal(line?.rep, 2);
  assert.equal(line?.user, undefined);
});

// A chunked upload from a generator that fails halfway: requests closes the connection in
// the middle of the body, as a crawler that gives up on an upload does.
const GIVE_UP_CLIENT = `
import sys, time, requests
def body():
    yield b"x" * 100000
    time.sleep(0.5)
    raise RuntimeError("upload given up")
with requests.Session() as s:
    s.trust_env = False
    try:
        s.post(sys.argv[1], data=body(), proxies={"http": sys.argv[2]}, timeout=10)
        print("sent")
    except RuntimeError:
        print("gave up")
`;

test('python3-requests giving up in the middle of an upload: its line says the client closed, and no 400 is logged for it', async (t) => {
  const tmp = await tempDir('requests-give-up');
  t.after(() => tmp.remove());
  // Answers once the whole body is in: never, for this one.
  const web = await startRecordingHttpServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('whole\n'));
  });
  t.after(() => web.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  const r = await runPython(GIVE_UP_CLIENT, [`${web.url}/upload`, `http://127.0.0.1:${gw.port}`], { timeoutMs: 60_000, home: tmp.dir });
  assert.equal(r.code, 0, `python3-requests exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr}`);
  assert.equal(r.stdout.trim(), 'gave up');
  const line = await gw.accessLog((l) => l.dest === `127.0.0.1:${web.port}`, 5_000);
  assert.ok(line, 'the upload has its line');
  assert.equal(line.error, 'client closed the connection');
  assert.equal(line.status, undefined, 'nothing was answered');
  assert.ok(Number(line.up) >= 100_000, 'the part of the body sent went on');
  for (let waited = 0; gw.gw.activeSessions > 0 && waited < 5_000; waited += 20) await new Promise((res) => setTimeout(res, 20));
  assert.equal(gw.gw.activeSessions, 0, 'nothing left open');
  const ended = gw.logs.filter((l) => l.msg === 'session end');
  assert.equal(ended.length, 1, JSON.stringify(ended));
});

/** GET `url` through the HTTP proxy on `port` with these raw Basic credential bytes: the status. */
function fetchThrough(port: number, url: string, credentials: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: url, headers: { host: new URL(url).host, 'proxy-authorization': `Basic ${credentials.toString('base64')}` }, agent: false, timeout: 10_000 });
    req.once('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.once('error', reject);
    req.end();
  });
}

// The README's "Local split routing" with Dante as the office hop and curl as the shell's client
// (ALL_PROXY=socks5h://, and the HTTP front): intranet names go to the hop as names, resolved
// there and never here; intranet networks through the hop; ads blocked; the rest direct.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startGateway } from '../helpers/index.js';
import { cleanEnv, runProcess, startRecordingHttpServer, tempDir } from '../helpers/clients.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { startDante } from '../helpers/upstreams.js';

const peerOf = (req: IncomingMessage, res: ServerResponse): void => {
  res.end(`from ${req.socket.remoteAddress ?? ''}\n`);
};

test('split routing: intranet names and networks through a Dante hop (names resolved there only), ads blocked, the rest direct; the access log says which', async (t) => {
  const tmp = await tempDir('split');
  t.after(() => tmp.remove());
  const dns = await startDnsServer({ 'web.test': { A: ['127.0.0.1'] } });
  t.after(() => dns.close());
  const office = await startDante({ host: '127.0.0.190' });
  t.after(() => office.close());
  // `localhost` stands for an intranet name: the hop resolves it (its /etc/hosts), the gateway is never asked.
  const byName = await startRecordingHttpServer(peerOf, '127.0.0.1');
  t.after(() => byName.close());
  const intranet = await startRecordingHttpServer(peerOf, '127.0.0.191');
  t.after(() => intranet.close());
  const gw = await startGateway({
    upstreams: { office: { type: 'socks5', host: office.host, port: office.port } },
    dns: { servers: [`127.0.0.1:${dns.port}`] },
    rules: [
      { name: 'ads', domains: ['keyword:adserver', 'doubleclick.net'], action: 'block' },
      { name: 'intranet', domains: ['corp.example.com', 'full:localhost'], cidrs: ['127.0.0.191/32'], action: 'office' },
    ],
    default: 'direct',
  });
  t.after(() => gw.close());

  const shell = async (url: string, proxyVar = `socks5h://127.0.0.1:${gw.port}`): Promise<{ code: number | null; out: string }> => {
    const r = await runProcess('/usr/bin/curl', ['--silent', '--max-time', '10', url], { timeoutMs: 15_000, env: cleanEnv(tmp.dir, { ALL_PROXY: proxyVar, NO_PROXY: '' }) });
    return { code: r.code, out: r.stdout };
  };
  const line = async (dest: string): Promise<Record<string, unknown> | undefined> => gw.accessLog((l) => l.dest === dest, 5_000);

  // An intranet name: sent to the hop as it is, reached from the hop's address.
  assert.deepEqual(await shell(`http://localhost:${byName.port}/wiki`), { code: 0, out: 'from 127.0.0.190\n' });
  // Through the HTTP front as well (a browser pointed at the same port).
  assert.deepEqual(await shell(`http://localhost:${byName.port}/http-front`, `http://127.0.0.1:${gw.port}`), { code: 0, out: 'from 127.0.0.190\n' });
  // An intranet address (the rule's cidrs): through the hop.
  assert.deepEqual(await shell(`${intranet.url}/by-address`), { code: 0, out: 'from 127.0.0.190\n' });
  // An intranet name the hop cannot resolve: its 0x04, and no lookup here.
  assert.equal((await shell(`http://wiki.corp.example.com:${intranet.port}/`)).code, 97);
  // Ads: blocked before any lookup.
  assert.equal((await shell('http://ads.doubleclick.net/')).code, 97);
  // Anything else: resolved here (the intranet rule's cidrs need the address), then direct.
  assert.deepEqual(await shell(`http://web.test:${byName.port}/public`), { code: 0, out: 'from 127.0.0.1\n' });

  assert.equal(dns.queries('localhost'), 0, 'an intranet name is never looked up by the gateway');
  assert.equal(dns.queries('wiki.corp.example.com'), 0);
  assert.equal(dns.queries('ads.doubleclick.net'), 0);
  assert.ok(dns.queries('web.test') > 0, 'a name outside the intranet is resolved for the cidrs');

  const hop = (await line(`localhost:${byName.port}`))!;
  assert.deepEqual([hop.protocol, hop.rule, hop.outbound, hop.rep, hop.member], ['socks5', 'intranet', 'office', 0, undefined]);
  const viaHttp = gw.logs.filter((l) => l.msg === 'session end' && l.dest === `localhost:${byName.port}` && l.protocol === 'http');
  assert.deepEqual(viaHttp.map((l) => [l.rule, l.outbound, l.status]), [['intranet', 'office', 200]]);
  const byAddress = (await line(`127.0.0.191:${intranet.port}`))!;
  assert.deepEqual([byAddress.rule, byAddress.outbound, byAddress.rep], ['intranet', 'office', 0]);
  const unknown = (await line(`wiki.corp.example.com:${intranet.port}`))!;
  assert.deepEqual([unknown.rule, unknown.outbound, unknown.rep], ['intranet', 'office', 4]);
  assert.match(String(unknown.error), /upstream "office" replied 4/);
  const ads = (await line('ads.doubleclick.net:80'))!;
  assert.deepEqual([ads.rule, ads.outbound, ads.rep], ['ads', 'block', 2]);
  const direct = (await line(`web.test:${byName.port}`))!;
  assert.deepEqual([direct.rule, direct.outbound, direct.rep], ['default', 'direct', 0]);
  assert.deepEqual(
    byName.seen.map((s) => `${s.url} ${s.peer}`),
    ['/wiki 127.0.0.190', '/http-front 127.0.0.190', '/public 127.0.0.1'],
  );
});

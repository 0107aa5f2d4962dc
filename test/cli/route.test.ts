// `socksgate route`: the decision a request would get, and the rule that made it.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { configFile, runCli } from '../helpers/cli.js';

const ROUTES = `
auth:
  users: [{ username: alice, password: pw }]
upstreams:
  corp: { type: socks5, host: 127.0.0.9, port: 1080 }
  crawl:
    type: pool
    strategy: sticky
    members: ["socks5://u:secret@127.0.0.10:1080", "socks5://127.0.0.11:1080", "socks5://127.0.0.12:1080"]
rules:
  - { name: ads, domains: ["keyword:adserver"], action: block }
  - { name: intranet, domains: [corp.example.com], cidrs: [10.0.0.0/8], action: corp }
  - { name: crawler, users: [alice], action: crawl }
  - { name: dns-over-udp, commands: [udp], ports: [53], action: block }
`;

test('route prints the rule, its index and the action', async () => {
  const path = await configFile(ROUTES);
  const cases: Array<[string[], RegExp]> = [
    [['x.adserver.net', '443'], /^rule=ads action=block index=0$/m],
    [['wiki.corp.example.com', '80'], /^rule=intranet action=corp index=1$/m],
    [['10.1.2.3', '22'], /^rule=intranet action=corp index=1$/m],
    [['example.org', '80'], /^rule=default action=direct index=-1$/m],
    [['1.1.1.1', '53', '--udp'], /^rule=dns-over-udp action=block index=3$/m],
  ];
  for (const [args, expected] of cases) {
    const r = await runCli(['route', ...args, '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, expected, args.join(' '));
  }
});

test('route refuses a HOST that a request is refused for before any rule, as traffic is (SOCKS 0x04, HTTP 400)', async () => {
  const path = await configFile(`${ROUTES}  - { name: loopback, cidrs: [127.0.0.0/8], action: block }\n`);
  assert.match((await runCli(['route', '127.0.0.1', '80', '--config', path])).stdout, /^rule=loopback action=block index=4$/m);
  for (const host of ['127.1', '2130706433', 'x.adserver.net..', '.corp.example.com', 'a b.example', 'bü cher.example']) {
    const r = await runCli(['route', host, '80', '--config', path]);
    assert.equal(r.code, 2, `${host}: ${r.stdout}`);
    assert.equal(r.stdout, '', host);
    assert.match(r.stderr, /is not an IP address or a hostname/, host);
  }
  for (const host of ['[::1]', '::ffff:10.1.2.3', 'WIKI.corp.example.com.']) {
    assert.equal((await runCli(['route', host, '80', '--config', path])).code, 0, host);
  }
});

test('route reads a HOST in Unicode as its A-label, as a request naming it in UTF-8 is read', async () => {
  const path = await configFile(`${ROUTES}  - { name: idn, domains: ["full:xn--bcher-kva.example"], action: block }\n`);
  for (const host of ['bücher.example', 'BÜCHER.example']) {
    const r = await runCli(['route', host, '443', '--config', path]);
    assert.equal(r.code, 0, `${host}: ${r.stderr}`);
    assert.match(r.stdout, /^rule=idn action=block index=4$/m, host);
  }
});

test('route names the pool member, the same for one session key, without its password', async () => {
  const path = await configFile(ROUTES);
  const a = await runCli(['route', 'example.org', '443', '--user', 'alice-session-42', '--config', path]);
  const b = await runCli(['route', 'example.org', '443', '--user', 'alice-session-42', '--config', path]);
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /^rule=crawler action=crawl member=socks5:\/\/\S+ index=2$/m);
  assert.equal(a.stdout, b.stdout);
  assert.ok(!a.stdout.includes('secret'));
});

test('route --udp and --bind name the pool member that can carry the command, as a request would get', async () => {
  // failover: the first member in order that can carry it; HTTP carries neither, SOCKS4 only BIND.
  const path = await configFile(`
upstreams:
  mix:
    type: pool
    strategy: failover
    members: ["http://10.0.0.1:3128", "socks4://10.0.0.2:1080", "socks5://10.0.0.3:1080"]
  web: { type: pool, members: ["http://10.0.0.4:3128"] }
rules:
  - { name: web, ports: [8080], action: web }
default: mix
`);
  const cases: Array<[string[], string]> = [
    [['443'], 'rule=default action=mix member=http://10.0.0.1:3128 index=-1'],
    [['443', '--bind'], 'rule=default action=mix member=socks4://10.0.0.2:1080 index=-1'],
    [['443', '--udp'], 'rule=default action=mix member=socks5://10.0.0.3:1080 index=-1'],
    [['8080', '--udp'], 'rule=web action=web member=none index=0 unsupported=udp'],
  ];
  for (const [args, expected] of cases) {
    const r = await runCli(['route', 'example.org', ...args, '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), expected, args.join(' '));
  }
});

test('route says egress=denied when direct would refuse every address it dials, as the gateway does (0x02, HTTP 403)', async () => {
  // A listener beyond loopback: the guard's default denies private, loopback and link-local networks.
  const path = await configFile(`
listen: [{ host: 0.0.0.0, port: 0 }]
auth: { users: [{ username: a, password: b }] }
dns: { hosts: { "intranet.test": 10.1.2.3, "meta.test": 169.254.169.254 } }
rules:
  - { name: lan, cidrs: [10.0.0.0/8], action: direct }
  - { name: meta, domains: [meta.test], action: direct }
`);
  const cases: Array<[string[], string]> = [
    [['10.1.2.3'], 'rule=lan action=direct index=0'], // the rule's own cidrs lift the guard
    [['intranet.test'], 'rule=lan action=direct index=0 resolved=10.1.2.3'],
    [['192.168.1.1'], 'rule=default action=direct index=-1 egress=denied'],
    [['::ffff:127.0.0.1', '--udp'], 'rule=default action=direct index=-1 egress=denied'],
    [['meta.test'], 'rule=meta action=direct index=1 resolved=169.254.169.254 egress=denied'],
    [['192.168.1.1', '--bind'], 'rule=default action=direct index=-1'], // BIND dials nothing
    [['203.0.113.9'], 'rule=default action=direct index=-1'],
  ];
  for (const [[host, ...flags], expected] of cases) {
    const r = await runCli(['route', host!, '80', ...flags, '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), expected, host);
  }
});

test("route on a gateway serving loopback only: the default guard denies every cloud's metadata server, Google Cloud's IPv6 one included", async () => {
  // On loopback listeners the default is [link-local, metadata]: fd20:ce::254 is in neither unless metadata names it.
  const path = await configFile('listen: [{ host: 127.0.0.1, port: 0 }]\n');
  for (const host of ['169.254.169.254', '100.100.100.200', 'fd00:ec2::254', 'fd20:ce::254', '::ffff:169.254.169.254']) {
    const r = await runCli(['route', host, '80', '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'rule=default action=direct index=-1 egress=denied', host);
  }
  const open = await runCli(['route', 'fd20:ce::253', '80', '--config', path]);
  assert.equal(open.stdout.trim(), 'rule=default action=direct index=-1', 'its neighbour is no metadata server');
});

test('route refuses a config whose members file is bad, as start-up and check do, whatever the decision', async () => {
  const path = await configFile('upstreams:\n  p: { type: pool, members_file: proxies.txt }\nrules:\n  - { name: web, ports: [80], action: p }\n');
  await writeFile(join(path, '..', 'proxies.txt'), 'socks5://127.0.0.1:1080\nnot a url\n');
  for (const port of ['80', '443']) {
    const r = await runCli(['route', 'example.com', port, '--config', path]);
    assert.equal(r.code, 1, `port ${port}: ${r.stdout}`);
    assert.equal(r.stdout, '', `port ${port}`);
    assert.match(r.stderr, /proxies\.txt:2:1: /, `port ${port}`);
  }
});

test('route says why a pool has no member for the request, as the request is refused: its tag filters, or a command none of them carries', async () => {
  const path = await configFile(`
auth:
  users: [{ username: alice, password: pw }]
upstreams:
  crawl:
    type: pool
    members: ["socks5://10.0.0.1:1080#country=de", "http://10.0.0.2:3128#country=us"]
default: crawl
`);
  const cases: Array<[string[], string]> = [
    [['--user', 'alice-country-fr'], 'rule=default action=crawl member=none index=-1 rep=0x04 reason=pool "crawl": no member matches country=fr'],
    [['--user', 'alice-country-us', '--bind'], 'rule=default action=crawl member=none index=-1 rep=0x07 reason=pool "crawl": no member matching country=us can carry bind'],
    // UDP gets no reply code: the association stands, its datagrams are dropped.
    [['--user', 'alice-country-us', '--udp'], 'rule=default action=crawl member=none index=-1 reason=pool "crawl": no member matching country=us can carry udp'],
    [['--user', 'alice-country-de', '--udp'], 'rule=default action=crawl member=socks5://10.0.0.1:1080 index=-1'],
  ];
  for (const [args, expected] of cases) {
    const r = await runCli(['route', 'example.org', '443', ...args, '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), expected, args.join(' '));
  }
});

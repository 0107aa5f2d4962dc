// The hosts an upstream, a pool member or a health check dials: an IP literal or a DNS name
// (RFC 1123 labels, `_` allowed, one trailing dot), else a config error at FILE:LINE:COL.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { issuesOf } from '../helpers/config.js';


const NOT_A_HOST = /is not an IP address or a DNS name/;

test('an upstream host that is neither an IP literal nor a DNS name is refused at its line and column', () => {
  const bad: Array<[string, RegExp]> = [
    ['"h h"', NOT_A_HOST],
    ['"exa mple.com"', NOT_A_HOST],
    ['"-proxy.example"', NOT_A_HOST],
    ['"proxy-.example"', NOT_A_HOST],
    ['"proxy..example"', NOT_A_HOST],
    ['".proxy.example"', NOT_A_HOST],
    ['"proxy.example.."', NOT_A_HOST],
    ['"proxy/1.example"', NOT_A_HOST],
    [`"${'a'.repeat(64)}.example"`, NOT_A_HOST],
    [`"${'abcdefghi.'.repeat(25)}example"`, NOT_A_HOST], // 257 characters
    ['"[::1]"', /write an IPv6 address without brackets/],
    ['"10.0.0.256"', /cannot end in a number/],
    ['"bücher.example"', /its ASCII form, "xn--bcher-kva\.example"/],
  ];
  for (const type of ['socks5', 'socks4', 'http']) {
    for (const [host, re] of bad) {
      const issues = issuesOf(`upstreams:\n  u:\n    type: ${type}\n    host: ${host}\n    port: 1080\ndefault: u\n`);
      assert.equal(issues.length, 1, issues.join('\n'));
      assert.ok(issues[0]!.startsWith('cfg.yaml:4:11: upstreams.u.host: '), issues[0]);
      assert.match(issues[0]!, re, `${type} ${host}`);
    }
  }
});

test('IP literals and DNS names pass, with "_", a trailing dot, any case, 63-character labels and 253 characters', () => {
  const good = [
    '10.0.0.1', '::1', 'fe80::1%eth0', 'localhost', 'proxy.example', 'Proxy.Example.COM', 'proxy.example.', 'dc_01.corp.example',
    '_socks._tcp.corp', 'proxy-1.example', '1proxy.example', 'xn--bcher-kva.example', `${'a'.repeat(63)}.example`, `${'abcdefghi.'.repeat(24)}example.com`,
  ];
  for (const host of good) {
    const c = parseConfig(`upstreams:\n  u: { type: socks5, host: "${host}", port: 1080 }\ndefault: u\n`, 'cfg.yaml', {});
    assert.equal(c.upstreams['u']?.type === 'socks5' && c.upstreams['u'].host, host);
  }
});

test('a pool member URL and a health-check target with such a host are refused where they are written, without the password', () => {
  const issues = issuesOf(`upstreams:
  p:
    type: pool
    members:
      - "socks5://user:SECRET@exa%20mple.com:1080"
      - { url: "http://user:SECRET@-proxy.example:3128" }
      - "socks5://proxy..example:1080"
      - "socks5://dc_01.corp.example.:1080"
    health_check: { target: "h h:443" }
default: p
`);
  assert.equal(issues.length, 4, issues.join('\n'));
  assert.match(issues[0]!, /^cfg\.yaml:5:9: upstreams\.p\.members\[0\]: bad host in socks5:\/\/user@exa%20mple\.com:1080: "exa%20mple\.com" is not an IP address or a DNS name/);
  assert.match(issues[1]!, /^cfg\.yaml:6:16: upstreams\.p\.members\[1\]\.url: bad host in http:\/\/user@-proxy\.example:3128: /);
  assert.match(issues[2]!, /^cfg\.yaml:7:9: upstreams\.p\.members\[2\]: bad host in socks5:\/\/proxy\.\.example:1080: /);
  assert.match(issues[3]!, /^cfg\.yaml:9:29: upstreams\.p\.health_check\.target: health_check\.target's host: "h h" is not an IP address or a DNS name/);
  assert.ok(!issues.some((i) => i.includes('SECRET')), issues.join('\n'));
});

test('check refuses a members_file line whose host can never be dialed, at FILE:LINE:COL', async () => {
  const dir = await tempDir('hosts');
  await writeFile(join(dir, 'proxies.txt'), 'dc_01.corp.example:1080\n-proxy.example:1080\n  user:SECRET@proxy..example:1080\nproxy.example.:1080:user:SECRET #country=de\n10.1:1080:user:SECRET\n');
  const file = join(dir, 'socksgate.yaml');
  await writeFile(file, 'upstreams:\n  p: { type: pool, members_file: proxies.txt, members_scheme: socks5 }\ndefault: p\n');
  const r = await runCli(['check', '--config', file]);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  const at = join(dir, 'proxies.txt');
  assert.equal(lines.length, 3, r.stderr);
  assert.ok(lines[0]!.startsWith(`${at}:2:1: bad host in -proxy.example:1080: "-proxy.example" is not an IP address or a DNS name`), lines[0]);
  assert.ok(lines[1]!.startsWith(`${at}:3:3: bad host in proxy..example:1080: `), lines[1]);
  assert.ok(lines[2]!.startsWith(`${at}:5:1: bad host in 10.1:1080: "10.1" is not an IP address, and a DNS name cannot end in a number`), lines[2]);
  assert.ok(!r.stderr.includes('SECRET'), r.stderr);
});

test('an upstream host or health-check target with credentials pasted in is refused without showing the password', () => {
  const issues = issuesOf(`upstreams:
  a: { type: socks5, host: "user:SECRET@proxy.example", port: 1080 }
  b: { type: http, host: "http://user:SECRET@proxy.example:3128", port: 3128 }
  c: { type: socks5, host: "proxy.example:1080:user:SECRET", port: 1080 }
  p:
    type: pool
    members: [a]
    health_check: { target: "user:SECRET@h.example:443" }
default: p
`);
  assert.equal(issues.length, 4, issues.join('\n'));
  assert.match(issues[0]!, /^cfg\.yaml:2:28: upstreams\.a\.host: "…@proxy\.example": .*as username and password$/);
  assert.match(issues[1]!, /^cfg\.yaml:3:26: upstreams\.b\.host: "http:\/\/…@proxy\.example:3128": /);
  assert.match(issues[2]!, /^cfg\.yaml:4:28: upstreams\.c\.host: "proxy\.example:1080:…": /);
  assert.match(issues[3]!, /^cfg\.yaml:8:29: upstreams\.p\.health_check\.target: .*"…@h\.example:443"/);
  assert.ok(!issues.some((i) => i.includes('SECRET')), issues.join('\n'));
});

test('a pasted host:port:user:pass whose password holds "@" is refused without any of the password', () => {
  // Read as user:pass@host, "proxy.example" would be the user: what comes before the first ":" is all that is shown.
  const issues = issuesOf(`upstreams:
  a: { type: socks5, host: "proxy.example:1080:user:SE@CRET", port: 1080 }
  b: { type: socks5, host: "socks5://proxy.example:1080:user:SE@CRET", port: 1080 }
default: a
`);
  assert.equal(issues.length, 2, issues.join('\n'));
  assert.match(issues[0]!, /^cfg\.yaml:2:28: upstreams\.a\.host: "proxy\.example:…": /);
  assert.match(issues[1]!, /^cfg\.yaml:3:28: upstreams\.b\.host: "socks5:\/\/proxy\.example:…": /);
  assert.ok(!issues.some((i) => i.includes('CRET')), issues.join('\n'));
});

test('a dns server pasted as a URL or list line with credentials is refused where it is written, without the password', () => {
  const issues = issuesOf(`dns:
  servers: ["https://user:SECRET@doh.example/dns-query", "user:SECRET@127.0.0.1:53", "127.0.0.1:53:user:SECRET"]
`);
  assert.equal(issues.length, 3, issues.join('\n'));
  for (const [i, issue] of issues.entries()) assert.match(issue, new RegExp(`^cfg\\.yaml:2:\\d+: dns\\.servers\\[${i}\\]: .* is not an IP address with an optional port`));
  assert.ok(!issues.some((i) => i.includes('SECRET')), issues.join('\n'));
});

test('a DoH URL with a token in its query is refused where it is written, with the query\'s values withheld', () => {
  const issues = issuesOf(`dns:
  servers: ["https://127.0.0.1:8443/dns-query?token=SECRET", "https://u:p@127.0.0.1/dns-query?a=1&key=SECRET", "127.0.0.1:53?SECRET"]
`);
  assert.equal(issues.length, 3, issues.join('\n'));
  assert.match(issues[0]!, /^cfg\.yaml:2:\d+: dns\.servers\[0\]: "https:\/\/127\.0\.0\.1:8443\/dns-query\?token=…" is not an IP address/);
  assert.match(issues[1]!, /^cfg\.yaml:2:\d+: dns\.servers\[1\]: "https:\/\/…@127\.0\.0\.1\/dns-query\?a=…&key=…" is not an IP address/);
  assert.match(issues[2]!, /^cfg\.yaml:2:\d+: dns\.servers\[2\]: "127\.0\.0\.1:53\?…" is not an IP address/);
  assert.ok(!issues.some((i) => i.includes('SECRET')), issues.join('\n'));
});

test('a pool member written as a comma-, semicolon- or bar-separated list line is refused without its password', () => {
  const issues = issuesOf(`upstreams:
  p: { type: pool, members: ["10.0.0.1,1080,user,SECRET", "10.0.0.1;1080;user;SECRET", "10.0.0.1|1080|user|SECRET"] }
default: p
`);
  assert.equal(issues.length, 3, issues.join('\n'));
  for (const [i, issue] of issues.entries()) assert.match(issue, new RegExp(`^cfg\\.yaml:2:\\d+: upstreams\\.p\\.members\\[${i}\\]: "10\\.0\\.0\\.1.…" names no upstream`), issue);
  assert.ok(!issues.some((i) => i.includes('SECRET')), issues.join('\n'));
});

test('a list line written behind a scheme (socks5://host,port,user,pass) is refused without its password', () => {
  const issues = issuesOf(`upstreams:
  p: { type: pool, members: ["socks5://10.0.0.1,1080,user,SECRET", "http://10.0.0.1|8080|user|SECRET", "socks5://10.0.0.1;1080;user;SECRET#country=de"] }
default: p
`);
  assert.equal(issues.length, 3, issues.join('\n'));
  for (const [i, issue] of issues.entries()) assert.match(issue, new RegExp(`^cfg\\.yaml:2:\\d+: upstreams\\.p\\.members\\[${i}\\]: .*10\\.0\\.0\\.1`), issue);
  assert.ok(!issues.some((i) => i.includes('SECRET')), issues.join('\n'));
});

test('a dns server or upstream host pasted as a comma-, semicolon- or bar-separated list line is refused without its password', () => {
  const issues = issuesOf(`dns:
  servers: ["127.0.0.1,53,user,SECRET", "127.0.0.1;53;user;SECRET", "127.0.0.1|53|user|SECRET"]
upstreams:
  a: { type: socks5, host: "10.0.0.1,1080,user,SECRET", port: 1080 }
default: a
`);
  assert.equal(issues.length, 4, issues.join('\n'));
  for (const [i, issue] of issues.slice(0, 3).entries()) assert.match(issue, new RegExp(`^cfg\\.yaml:2:\\d+: dns\\.servers\\[${i}\\]: "127\\.0\\.0\\.1.…" is not an IP address`), issue);
  assert.match(issues[3]!, /^cfg\.yaml:4:\d+: upstreams\.a\.host: "10\.0\.0\.1,…": a host is a name or an address alone/);
  assert.ok(!issues.some((i) => i.includes('SECRET')), issues.join('\n'));
});

import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { issuesOf } from '../helpers/config.js';

/** The issue lines of a config that must fail. */

/** Asserts one issue starts with `cfg.yaml:LINE:COL: ` and matches `re`. */
function assertIssue(issues: readonly string[], where: string, re: RegExp): void {
  const hit = issues.find((i) => i.startsWith(`cfg.yaml:${where}: `) && re.test(i));
  assert.ok(hit, `no issue at ${where} matching ${re}; got:\n${issues.join('\n')}`);
}

test('a username or password no client could send is refused: a ":" in a username, more than 255 bytes in either', () => {
  const long = 'é'.repeat(200); // 200 characters, 400 bytes
  const issues = issuesOf(`auth:
  users:
    - { username: "a:b", password: x }
    - { username: "${long}", password: x }
    - { username: carol, password: "${long}" }
    - { username: "zoë.d@corp_1", password: "pässwörd:✓ x" }
`);
  assertIssue(issues, '3:19', /"a:b" contains ":", which HTTP Basic auth cannot carry/);
  assertIssue(issues, '4:19', /username: is 400 bytes in UTF-8: a SOCKS5 login \(RFC 1929\) carries at most 255/);
  assertIssue(issues, '5:36', /password: is 400 bytes in UTF-8/);
  assert.ok(!issues.some((i) => i.includes(long)), 'the password is not in the message');
  assert.ok(!issues.some((i) => i.startsWith('cfg.yaml:6:')), issues.join('\n'));
  assert.equal(issues.length, 3, issues.join('\n'));
});

test('an empty file gets every default', () => {
  const c = parseConfig('', '/etc/socksgate/socksgate.yaml', {});
  assert.deepEqual(c.listen, [{ host: '127.0.0.1', port: 1080, protocols: ['socks5', 'socks4', 'http'] }]);
  assert.equal(c.workers, 1);
  assert.deepEqual(c.egress, { deny: ['link-local', 'metadata'] });
  assert.equal(c.auth, undefined);
  assert.equal(c.default, 'direct');
  assert.deepEqual(c.upstreams, {});
  assert.deepEqual(c.rules, []);
  assert.deepEqual(c.limits, {
    handshake_timeout: 10_000,
    connect_timeout: 10_000,
    idle_timeout: 300_000,
    udp_idle_timeout: 120_000,
    bind_timeout: 30_000,
    max_connections: 20_000,
    max_connections_per_source: 0,
    max_handshakes: 2_000,
    auth_failures: { max: 10, window: 60_000, block: 300_000 },
    drain_timeout: 30_000,
  });
  assert.deepEqual(c.dns, { cache_size: 10_000, negative_ttl: 30_000, timeout: 5_000, prefer: 'ipv4', hosts: {} });
  assert.equal(c.allow_open_proxy, false);
  assert.deepEqual(c.log, { level: 'info', format: 'json' });
  assert.equal(c.metrics, undefined);
  assert.deepEqual(c.udp, {});
  assert.equal(c.base_dir, '/etc/socksgate');
  assert.equal(c.source, '/etc/socksgate/socksgate.yaml');
});

test('defaults fill the gaps of partial sections and nested objects', () => {
  const c = parseConfig(
    `
auth:
  users: [{ username: alice, password: pw }]
upstreams:
  a: { type: socks5, host: 10.0.0.1, port: 1080 }
  p: { type: pool, members: [a], health_check: { target: "example.com:443" } }
rules:
  - { name: r, cidrs: [10.0.0.0/8], action: a }
limits: { idle_timeout: 90s }
dns: { min_ttl: 500ms, max_ttl: 1h }
metrics: {}
`,
    'cfg.yaml',
    {},
  );
  assert.deepEqual(c.auth, { users: [{ username: 'alice', password: 'pw' }], allow_anonymous: false });
  assert.deepEqual(c.upstreams['a'], { type: 'socks5', host: '10.0.0.1', port: 1080, remote_dns: true });
  assert.deepEqual(c.upstreams['p'], {
    type: 'pool',
    members: ['a'],
    members_scheme: 'socks5',
    strategy: 'round-robin',
    max_attempts: 3,
    ban_after: 3,
    health_check: { target: 'example.com:443', interval: 30_000, timeout: 5_000 },
  });
  assert.equal(c.rules[0]!.resolve, true);
  assert.equal(c.limits.idle_timeout, 90_000);
  assert.equal(c.limits.connect_timeout, 10_000);
  assert.equal(c.dns.min_ttl, 500);
  assert.equal(c.dns.max_ttl, 3_600_000);
  assert.deepEqual(c.metrics, { host: '127.0.0.1', port: 9180, per_user: false });
});

test('anchors and merge keys work (shared upstream settings)', () => {
  const c = parseConfig(
    `upstreams:
  a: &hop { type: socks5, host: 10.0.0.1, port: 1080, username: gw, password: pw }
  b: { <<: *hop, host: 10.0.0.2 }
`,
    'cfg.yaml',
    {},
  );
  assert.deepEqual(c.upstreams['b'], { type: 'socks5', host: '10.0.0.2', port: 1080, username: 'gw', password: 'pw', remote_dns: true });
});

test('the result is deeply frozen', () => {
  const c = parseConfig('rules: [{ name: r, ports: [80], action: block }]', 'cfg.yaml', {});
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.listen[0]));
  assert.ok(Object.isFrozen(c.rules[0]!.ports));
  assert.throws(() => (c.limits as { idle_timeout: number }).idle_timeout = 1, TypeError);
});

test('${VAR} and ${VAR:-fallback} are replaced in every string value', () => {
  const c = parseConfig(
    `
auth:
  users:
    - username: \${USER_NAME}
      password: "pre-\${PW}-\${MISSING:-dflt}-$\${LITERAL}"
default: \${DEFAULT_ACTION:-block}
`,
    'cfg.yaml',
    { USER_NAME: 'alice', PW: 's3cret' },
  );
  assert.deepEqual(c.auth!.users[0], { username: 'alice', password: 'pre-s3cret-dflt-${LITERAL}' });
  assert.equal(c.default, 'block');
});

test('an unset ${VAR} without fallback is an error naming it at its line and column', () => {
  const issues = issuesOf('auth:\n  users:\n    - username: alice\n      password: "x${ALICE_PASSWORD}"\n');
  assert.deepEqual(issues, ['cfg.yaml:4:19: environment variable ALICE_PASSWORD is not set (use ${ALICE_PASSWORD:-fallback} for a default)']);
});

test('YAML syntax errors carry line and column', () => {
  const issues = issuesOf('listen:\n  - host: 127.0.0.1\n    port: [1080\nlog: {}\n');
  assert.ok(issues.length >= 1);
  assert.match(issues[0]!, /^cfg\.yaml:\d+:\d+: /);
  const dup = issuesOf('log:\n  level: info\nlog:\n  level: warn\n');
  assertIssue(dup, '3:1', /unique/);
});

test('a second YAML document is an error at its "---" that says what to do, not which library function to call', () => {
  const issues = issuesOf('listen:\n  - { host: 127.0.0.1, port: 1080 }\n---\nlog: {}\n');
  assert.equal(issues.length, 1, issues.join('\n'));
  assertIssue(issues, '3:1', /one YAML document/);
  assert.match(issues[0]!, /merge the two/);
  assert.doesNotMatch(issues[0]!, /parseAllDocuments/);
});

test('a bad escape in a double-quoted password is an error at its place that quotes none of the password', () => {
  const issues = issuesOf('auth:\n  users:\n    - { username: a, password: "ab\\uSECRxyz" }\n    - { username: b, password: "cd\\U12SECRETxy" }\n    - { username: c, password: "ef\\xSEcret" }\n');
  assert.equal(issues.length, 3, issues.join('\n'));
  for (const [i, issue] of issues.entries()) assert.match(issue, new RegExp(`^cfg\\.yaml:${i + 3}:\\d+: invalid escape sequence`), issue);
  assert.ok(!issues.some((i) => /SEC|ecret/.test(i)), issues.join('\n'));
});

test('an unquoted password that YAML reads as a block scalar header or an alias is an error that does not quote it', () => {
  for (const [value, said] of [['>BlockSecret', /block scalar/], ['|BlockSecret', /block scalar/], ['*AliasSecret', /alias/]] as const) {
    const issues = issuesOf(`auth:\n  users:\n    - username: a\n      password: ${value}\n`);
    assert.equal(issues.length, 1, issues.join('\n'));
    assert.match(issues[0]!, /^cfg\.yaml:4:\d+: /);
    assert.match(issues[0]!, said);
    assert.doesNotMatch(issues[0]!, /Secret/);
  }
});

test('an unquoted value that YAML reads as a tag (!NAME) is an error at the tag that does not quote it', () => {
  // yaml reads `!Tag Secret` as the tag !Tag on "Secret" and only warns: the password was silently "Secret".
  for (const value of ['!TagSecret rest', '!!TagSecret rest', '!<tag:TagSecret> rest', '!TagSecret [a]']) {
    const issues = issuesOf(`auth:\n  users:\n    - username: a\n      password: ${value}\n`);
    assert.equal(issues.length, 1, `${value}: ${issues.join('\n')}`);
    assert.match(issues[0]!, /^cfg\.yaml:4:17: a YAML tag \(!NAME\) the gateway does not know: quote a value that starts with !/, value);
    assert.doesNotMatch(issues[0]!, /Secret/);
  }
  // Tags of YAML's own that make the same value stay accepted.
  assert.throws(() => issuesOf('auth:\n  users:\n    - { username: a, password: !!str 1234 }\n'), /config was accepted/);
});

test('schema violations point at the offending key or value', () => {
  const issues = issuesOf(
    `listen:
  - host: 127.0.0.1
    prot: 1080
limits:
  idle_timeout: 5
  connect_timeout: ten
log: { level: loud }
`,
  );
  assertIssue(issues, '2:5', /listen\[0\]: missing required key "port"/);
  assertIssue(issues, '3:5', /listen\[0\]\.prot: unknown key \(expected one of: host, port, protocols, proxy_protocol\)/);
  // A number where a duration goes is one without its unit: said as such, not "must be a string".
  assertIssue(issues, '5:17', /limits\.idle_timeout: must be a duration like 500ms, 10s, 5m or 1h/);
  assertIssue(issues, '6:20', /limits\.connect_timeout: must be a duration like 500ms, 10s, 5m or 1h/);
  assertIssue(issues, '7:15', /log\.level: must be one of: fatal, error, warn, info, debug, trace, silent/);
});

test('schema problems are one line each, in words, where the value is: a rate, a tag, an upstream type, a member object', () => {
  const issues = issuesOf(
    `auth:
  users:
    - { username: a, password: b, bandwidth: 20MBps }
    - { username: c, password: d, bandwidth: 1000000 }
upstreams:
  u:
    host: h
    type: sock5
    port: 1
  v: { host: h, port: 1 }
  p: { type: pool, members: [{ url: "socks5://h:1", tags: { country: "d e" } }] }
`,
  );
  const rate = /must be a rate like 500KiB\/s, 20MiB\/s or 1GB\/s/;
  assertIssue(issues, '3:46', rate);
  assertIssue(issues, '4:46', rate);
  assertIssue(issues, '8:11', /upstreams\.u\.type: must be one of: socks5, socks4, http, pool/);
  assertIssue(issues, '10:6', /upstreams\.v: missing required key "type"/);
  assertIssue(issues, '11:70', /upstreams\.p\.members\[0\]\.tags\.country: must be letters, digits and _/);
  assert.equal(issues.length, 5, issues.join('\n'));
});

test('a pool member in object form says what is wrong in it: an unknown key, a missing url; another value says what a member may be', () => {
  const issues = issuesOf(`upstreams:
  p:
    type: pool
    members:
      - { URL: "socks5://h:1" }
      - { url: "socks5://h:2", wieght: 2 }
      - 5
`);
  assertIssue(issues, '5:9', /upstreams\.p\.members\[0\]: missing required key "url"/);
  assertIssue(issues, '5:11', /upstreams\.p\.members\[0\]\.URL: unknown key \(expected one of: url, weight, tags\)/);
  assertIssue(issues, '6:32', /upstreams\.p\.members\[1\]\.wieght: unknown key \(expected one of: url, weight, tags\)/);
  assertIssue(issues, '7:9', /upstreams\.p\.members\[2\]: must be a string or a mapping \(key: value\)/);
  assert.equal(issues.length, 4, issues.join('\n'));
  assert.ok(!issues.some((i) => i.includes('anyOf')), issues.join('\n'));
});

test('all problems are reported at once, in file order', () => {
  const issues = issuesOf('bogus: 1\nrules:\n  - { name: r, action: nowhere }\ndefault: gone\n');
  assert.equal(issues.length, 3);
  assert.match(issues[0]!, /^cfg\.yaml:1:1: bogus: unknown key/);
  assert.match(issues[1]!, /^cfg\.yaml:3:24: rules\[0\]\.action: "nowhere" names no upstream or pool/);
  assert.match(issues[2]!, /^cfg\.yaml:4:10: default: "gone" names no upstream or pool/);
});

test('upstream and pool mistakes', () => {
  const issues = issuesOf(
    `upstreams:
  a: { type: socks5, host: h, port: 1, via: nobody }
  b: { type: socks5, host: h, port: 1, username: u }
  c: { type: ftp, host: h, port: 1 }
  p:
    type: pool
    members: [a, "socks5:///path", "socks5://h:99999", "ftp://h:1", ghost]
  q: { type: pool, members: [p] }
  e: { type: pool }
  h: { type: pool, members: [a], health_check: { target: "no-port" } }
`,
  );
  assertIssue(issues, '2:45', /upstreams\.a\.via: "nobody" names no upstream/);
  assertIssue(issues, '3:6', /"username" requires "password"/);
  assertIssue(issues, '4:14', /upstreams\.c\.type: must be one of: socks5, socks4, http, pool/);
  assertIssue(issues, '7:18', /members\[1\]: no host in socks5:\/\/\/path: expected socks5:\/\/, .* http:\/\/ or https:\/\/ \[user:pass@\]host:port/);
  assertIssue(issues, '7:36', /members\[2\]: not a URL/);
  assertIssue(issues, '7:56', /members\[3\]: unsupported scheme "ftp:"/);
  assertIssue(issues, '7:69', /members\[4\]: "ghost" names no upstream/);
  assertIssue(issues, '8:30', /"p" is a pool/);
  assertIssue(issues, '9:6', /a pool needs "members" or "members_file"/);
  assertIssue(issues, '10:58', /health_check\.target must be host:port, got "no-port"/);
});

test('a via on a pool is one problem, the unknown key, not also a name to look up', () => {
  const issues = issuesOf('upstreams:\n  p: { type: pool, members: ["socks5://127.0.0.1:1"], via: corp }\n');
  assertIssue(issues, '2:55', /upstreams\.p\.via: unknown key/);
  assert.equal(issues.length, 1, issues.join('\n'));
});

test('a via cycle is an error at the via that closes it', () => {
  const issues = issuesOf(
    `upstreams:
  a: { type: socks5, host: h, port: 1, via: b }
  b: { type: socks5, host: h, port: 1, via: c }
  c: { type: socks5, host: h, port: 1, via: a }
  self: { type: socks5, host: h, port: 1, via: self }
`,
  );
  assert.equal(issues.length, 2, issues.join('\n'));
  assertIssue(issues, '4:45', /via cycle: a → b → c → a/);
  assertIssue(issues, '5:48', /via cycle: self → self/);
});

test('a cycle through a pool member is caught as well', () => {
  const issues = issuesOf(
    `upstreams:
  a: { type: socks5, host: h, port: 1, via: p }
  p: { type: pool, members: [a] }
`,
  );
  assertIssue(issues, '3:30', /via cycle: a → p → a/);
});

test('pools naming each other as members: each is told it names a pool, with no via cycle beside it (no via is involved)', () => {
  const issues = issuesOf('upstreams:\n  a: { type: pool, members: [b] }\n  b: { type: pool, members: [a] }\n');
  assertIssue(issues, '2:30', /upstreams\.a\.members\[0\]: "b" is a pool/);
  assertIssue(issues, '3:30', /upstreams\.b\.members\[0\]: "a" is a pool/);
  assert.equal(issues.length, 2, issues.join('\n'));
});

test('a list or a mapping as a key (`? [a]`) is an error at the key, not an upstream named "[ a ]"', () => {
  const issues = issuesOf('upstreams:\n  ? [a]\n  : { type: socks5, host: h, port: 1 }\nrules:\n  - { ? { x: 1 } : 2, action: direct }\n');
  assertIssue(issues, '2:5', /a key must be a name, not a list or a mapping/);
  assertIssue(issues, '5:9', /a key must be a name, not a list or a mapping/);
  assert.equal(issues.length, 2, issues.join('\n'));
});

test('an alias of a list used as a key (`*k :`) is an error at the key as well, not an upstream named "*k"', () => {
  const issues = issuesOf('rules:\n  - { name: r, domains: &k [a.example], action: direct }\nupstreams:\n  *k : { type: socks5, host: h, port: 1 }\n');
  assertIssue(issues, '4:3', /a key must be a name, not a list or a mapping/);
  assert.equal(issues.length, 1, issues.join('\n'));
});

test('rule entries: bad CIDRs, regexps, matcher prefixes, port ranges, unknown users', () => {
  const issues = issuesOf(
    `auth:
  users: [{ username: alice, password: pw }]
rules:
  - name: r
    domains: ["regexp:(unclosed", "full:", "domian:x.com", "domain:ok.example", "*.ok.example", bad..example]
    cidrs: [10.0.0.0/33, 300.1.1.1/8, "fd00::/8"]
    sources: [not-an-ip]
    ports: [80, "9000-8000", "1-70000", 0, "x"]
    users: [alice, carol]
    action: direct
  - name: r
    action: block
`,
  );
  assertIssue(issues, '5:15', /domains\[0\]: invalid regexp "\(unclosed"/);
  assertIssue(issues, '5:35', /domains\[1\]: invalid domain "full:"/);
  assertIssue(issues, '5:44', /domains\[2\]: unknown domain entry type "domian:"/);
  assertIssue(issues, '5:97', /domains\[5\]: invalid domain "bad\.\.example"/);
  assertIssue(issues, '6:13', /cidrs\[0\]: invalid CIDR "10\.0\.0\.0\/33"/);
  assertIssue(issues, '6:26', /cidrs\[1\]: invalid CIDR "300\.1\.1\.1\/8"/);
  assertIssue(issues, '7:15', /sources\[0\]: invalid CIDR "not-an-ip"/);
  assertIssue(issues, '8:17', /ports\[1\]: invalid port range "9000-8000": 9000 is above 8000/);
  assertIssue(issues, '8:30', /ports\[2\]: invalid port "1-70000": ports go up to 65535/);
  assertIssue(issues, '8:41', /ports\[3\]: must be a port/);
  assertIssue(issues, '8:44', /ports\[4\]: must be a port/);
  assertIssue(issues, '9:20', /user "carol" is not in auth\.users/);
  assertIssue(issues, '11:11', /rule name "r" is used twice/);
  assert.equal(issues.length, 13, issues.join('\n'));
});

test('a rule may not be named "default": logs, metrics, /api/stats and route name the fallback so, and the two would read as one', () => {
  const issues = issuesOf(
    `rules:
  - name: default
    ports: [25]
    action: block
`,
  );
  assert.equal(issues.length, 1, issues.join('\n'));
  assertIssue(issues, '2:11', /rule name "default" is reserved/);
});

test('rule entries: a domain may be written in Unicode; a non-ASCII keyword or regexp is an error at its position', () => {
  const text = `rules:
  - name: idn
    domains: [bücher.example, "keyword:bücher", "regexp:^münchen\\\\.", "keyword:xn--bcher"]
    action: block
`;
  const issues = issuesOf(text);
  assertIssue(issues, '3:31', /domains\[1\]: "keyword:bücher": a non-ASCII character never matches/);
  assertIssue(issues, '3:49', /domains\[2\]: "regexp:\^münchen\\\.": a non-ASCII character never matches/);
  assert.equal(issues.length, 2, issues.join('\n'));
});

test('listen: host literals, and no open proxy on a reachable address', () => {
  const issues = issuesOf('listen:\n  - host: localhost\n    port: 1080\n  - host: 0.0.0.0\n    port: 1080\n');
  assertIssue(issues, '2:11', /"localhost" is not an IPv4 or IPv6 address literal/);
  assertIssue(issues, '4:11', /refusing to listen on 0\.0\.0\.0 .*without auth.*open proxy.*"auth".*"allow_open_proxy: true"/);
  const v6 = issuesOf('listen: [{ host: "::", port: 1080 }]\n');
  assertIssue(v6, '1:18', /refusing to listen on ::/);
  const anonymous = issuesOf('listen: [{ host: 192.0.2.1, port: 1080 }]\nauth: { users: [{ username: a, password: b }], allow_anonymous: true }\n');
  assertIssue(anonymous, '1:18', /allow_anonymous/);
});

test('an open listener is accepted with auth or with allow_open_proxy; loopback always', () => {
  for (const text of [
    'listen: [{ host: 0.0.0.0, port: 1080 }]\nallow_open_proxy: true\n',
    'listen: [{ host: "::", port: 1080 }]\nauth: { users: [{ username: a, password: b }] }\n',
    'listen: [{ host: "::1", port: 1080 }, { host: 127.0.0.2, port: 0 }]\n',
  ]) {
    assert.doesNotThrow(() => parseConfig(text, 'cfg.yaml', {}), text);
  }
});

test('other semantic checks: dns servers and hosts, ttl order, udp.advertise, users', () => {
  const issues = issuesOf(
    `dns:
  servers: [1.1.1.1, "127.0.0.1:5353", "[::1]:53", "dns.google", "1.1.1.1:99999", "::1", "1.1.1.1:0"]
  min_ttl: 2h
  max_ttl: 1h
  hosts: { printer.corp: nowhere }
udp: { advertise: gateway.local }
auth:
  users:
    - { username: alice, password: a }
    - { username: alice, password: b }
    - { username: x-session-y, password: c }
    - { username: bob, password: d, password_hash: "scrypt$16384$8$1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==" }
    - { username: eve, password_hash: "scrypt$1000$8$1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==" }
    - { username: mal, password_hash: "scrypt$bad" }
`,
  );
  assertIssue(issues, '2:52', /"dns\.google" is not an IP address/);
  assertIssue(issues, '2:66', /"1\.1\.1\.1:99999"/);
  // Port 0 must never reach Resolver#setServers: Node aborts the process on it.
  assertIssue(issues, '2:90', /"1\.1\.1\.1:0"/);
  assert.ok(!issues.some((i) => i.includes('"::1"')), issues.join('\n'));
  assertIssue(issues, '3:12', /min_ttl \(2h\) is longer than max_ttl \(1h\)/);
  assertIssue(issues, '5:26', /"nowhere" is not an IP address/);
  assertIssue(issues, '6:19', /udp\.advertise: "gateway\.local" is not an IPv4 or IPv6/);
  assertIssue(issues, '10:19', /user "alice" is defined twice/);
  assertIssue(issues, '11:19', /contains "-", which starts the session parameters/);
  assertIssue(issues, '12:7', /set exactly one of "password" or "password_hash"/);
  assertIssue(issues, '13:39', /N must be a power of two/);
  // One line for a hash of the wrong shape, not the schema's and the parser's both.
  assert.deepEqual(issues.filter((i) => i.startsWith('cfg.yaml:14:')), ['cfg.yaml:14:39: auth.users[5].password_hash: must be a scrypt hash as printed by `socksgate hash-password` (scrypt$N$r$p$salt$hash)']);
});

test('dns.hosts: a name no request can look up (ending in a number, an IP, not a hostname) is an error at its key', () => {
  const issues = issuesOf(`dns:
  hosts:
    printer.corp: 10.8.3.3
    "10": 127.0.0.1
    1.2.3: 127.0.0.1
    printer.1: 127.0.0.1
    127.0.0.1.: 127.0.0.1
    "::1": 127.0.0.1
    bad..name: 127.0.0.1
    bücher.example: 127.0.0.1
`);
  assertIssue(issues, '4:5', /dns\.hosts\["10"\]: "10" ends in a number: it reads as the IPv4 address 0\.0\.0\.10 .*refused before any rule/);
  assertIssue(issues, '5:5', /dns\.hosts\["1\.2\.3"\]: "1\.2\.3" ends in a number: it reads as the IPv4 address 1\.2\.0\.3/);
  assertIssue(issues, '6:5', /"printer\.1" ends in a number, as only an IPv4 address does/);
  assertIssue(issues, '7:5', /"127\.0\.0\.1\." ends in a number/);
  assertIssue(issues, '8:5', /"::1" is an IP address, which is never looked up/);
  assertIssue(issues, '9:5', /"bad\.\.name" is not a hostname/);
  assert.equal(issues.length, 6, issues.join('\n'));
});

test('loadConfig: explicit path, ./socksgate.yaml in cwd, then the embedded default', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-cfg-'));
  t.after(() => rm(dir, { recursive: true, force: true }));

  const embedded = await loadConfig({ cwd: dir, env: {} });
  assert.equal(embedded.source, '<embedded default>');
  assert.equal(embedded.base_dir, dir);
  assert.deepEqual(embedded.listen, [{ host: '127.0.0.1', port: 1080, protocols: ['socks5', 'socks4', 'http'] }]);
  assert.equal(embedded.auth, undefined);
  assert.equal(embedded.default, 'direct');
  assert.deepEqual(embedded.rules, []);

  await writeFile(join(dir, 'socksgate.yaml'), 'log: { level: warn }\n');
  const found = await loadConfig({ cwd: dir, env: {} });
  assert.equal(found.log.level, 'warn');
  assert.equal(found.source, join(dir, 'socksgate.yaml'));

  await writeFile(join(dir, 'other.yaml'), 'default: ${ACTION}\n');
  const explicit = await loadConfig({ cwd: dir, path: 'other.yaml', env: { ACTION: 'block' } });
  assert.equal(explicit.default, 'block');
  assert.equal(explicit.source, 'other.yaml');
  assert.equal(explicit.base_dir, dir);

  await assert.rejects(loadConfig({ cwd: dir, path: 'other.yaml', env: {} }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.issues, ['other.yaml:1:10: environment variable ACTION is not set (use ${ACTION:-fallback} for a default)']);
    return true;
  });
  await assert.rejects(loadConfig({ cwd: dir, path: 'missing.yaml' }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.issues[0]!, /^missing\.yaml: cannot read the config file \(ENOENT\)/);
    return true;
  });
});

test('${...} inside a fallback is replaced too; nothing of it is left behind', () => {
  const c = parseConfig('default: "${ACTION:-${FALLBACK_ACTION}}"\nauth:\n  users:\n    - { username: a, password: "${PW:-${DEFAULT_PW}}" }\n', 'cfg.yaml', {
    FALLBACK_ACTION: 'block',
    DEFAULT_PW: 'secret',
  });
  assert.equal(c.default, 'block');
  assert.equal(c.auth?.users[0]?.password, 'secret');
});

test('a malformed ${...} in a password or the API token is located without showing it', () => {
  const issues = issuesOf(
    'auth:\n  users:\n    - username: a\n      password: "hunter${2-x}two"\nupstreams:\n  p: { type: pool, members: ["socks5://u:hunter${3-y}@127.0.0.1:1"] }\n' +
      'metrics:\n  api_token: "tok3n-${4-z}-0123456789"\n',
  );
  assertIssue(issues, '4:24', /invalid "\$\{\.\.\.\}"/);
  assertIssue(issues, '6:48', /invalid "\$\{\.\.\.\}"/);
  assertIssue(issues, '8:21', /invalid "\$\{\.\.\.\}"/);
  assert.ok(!issues.some((i) => /hunter|2-x|3-y|4-z/.test(i)), issues.join('\n'));
});

test('metrics.api_token needs 16 characters besides the whitespace around it, which the API leaves out (a secret file\'s newline); the token is not shown', () => {
  const issues = issuesOf('metrics:\n  api_token: "   s3cret-pad       \\n"\n');
  assert.equal(issues.length, 1, issues.join('\n'));
  assertIssue(issues, '2:14', /metrics\.api_token: 16 characters at least, not counting the whitespace around it \(it has 10\)/);
  assert.ok(!issues.some((i) => i.includes('s3cret')), issues.join('\n'));
  const ok = parseConfig('metrics:\n  api_token: "0123456789abcdef\\n"\n', 'cfg.yaml', {});
  assert.equal(ok.metrics?.api_token, '0123456789abcdef\n');
});

test('a pool member missing its scheme is reported without its password', () => {
  const issues = issuesOf(
    'upstreams:\n  p: { type: pool, members: ["u:hunter2@127.0.0.1:1080", "127.0.0.2:1080:u:hunter3", { url: "10.0.0.1:80:u:hunter4" }] }\n',
  );
  assertIssue(issues, '2:30', /upstreams\.p\.members\[0\]: .*127\.0\.0\.1:1080.* names no upstream and is not a proxy URL/);
  assertIssue(issues, '2:58', /upstreams\.p\.members\[1\]: "127\.0\.0\.2:…" names no upstream and is not a proxy URL/);
  assertIssue(issues, '2:93', /upstreams\.p\.members\[2\]\.url: "10\.0\.0\.1:…" is not a proxy URL/);
  assert.ok(!issues.some((i) => /hunter/.test(i)), issues.join('\n'));
});

test('a pool member written host:port:user:pass whose password holds "@" is reported without any of the password', () => {
  const issues = issuesOf('upstreams:\n  p: { type: pool, members: ["127.0.0.3:1080:u:hun@ter5"] }\n');
  assertIssue(issues, '2:30', /upstreams\.p\.members\[0\]: "127\.0\.0\.3:…" names no upstream and is not a proxy URL/);
  assert.ok(!issues.some((i) => /ter5/.test(i)), issues.join('\n'));
});

test('pool members of every scheme and the object form pass; bad tags, a SOCKS4 password and a bad object url are located', () => {
  const ok = parseConfig(
    `upstreams:
  p:
    type: pool
    members:
      - "socks5h://u:p@127.0.0.1:1080#country=de,tier=a"
      - "socks4://127.0.0.1:1081"
      - "socks4a://id@127.0.0.1:1082"
      - "http://u:p@127.0.0.1:3128"
      - "https://u:p@proxy.example:443"
      - { url: "http://u:p@127.0.0.1:8080", weight: 3, tags: { country: us } }
`,
    'cfg.yaml',
    {},
  );
  assert.equal(ok.upstreams['p']?.type === 'pool' && ok.upstreams['p'].members.length, 6);
  const bad = issuesOf(
    `upstreams:
  p:
    type: pool
    members:
      - "socks5://127.0.0.1:1080#country"
      - "socks4://u:hunter5@127.0.0.1:1081"
      - { url: "gopher://127.0.0.1:70" }
`,
  );
  assertIssue(bad, '5:9', /members\[0\]: tags after "#" must be key=value/);
  assertIssue(bad, '6:9', /members\[1\]: SOCKS4 has no password/);
  assertIssue(bad, '7:16', /members\[2\]\.url: unsupported scheme "gopher:"/);
  assert.ok(!bad.some((i) => /hunter/.test(i)), bad.join('\n'));
});

test('an http upstream or member whose username holds ":" is refused: HTTP Basic would send the rest as the password', () => {
  const bad = issuesOf(`upstreams:
  corp: { type: http, host: 127.0.0.1, port: 3128, username: "a:b", password: hunter6 }
  p: { type: pool, members: ["http://a%3Ab:hunter7@127.0.0.1:3128", "socks5://a%3Ab:c@127.0.0.1:1080", "http://a:b%3Ac@127.0.0.1:3129"] }
`);
  assertIssue(bad, '2:62', /upstreams\.corp\.username: contains ":", which HTTP Basic auth cannot carry/);
  assertIssue(bad, '3:30', /members\[0\]: a ":" in the username, which HTTP Basic auth cannot carry/);
  assert.equal(bad.length, 2, bad.join('\n'));
  assert.ok(!bad.some((i) => /hunter/.test(i)), bad.join('\n'));
});

test('a plain value that is only ${VAR} takes the type the schema wants (port: ${PORT})', () => {
  const env = { PORT: '1081', PW: '12345', MAXC: '500', OPEN: 'true', BAD: 'eighty' };
  const c = parseConfig(
    'listen:\n  - host: ${HOST:-0.0.0.0}\n    port: ${PORT}\nallow_open_proxy: ${OPEN}\nlimits:\n  max_connections: ${MAXC:-20}\n' +
      'auth:\n  users:\n    - username: a\n      password: ${PW}\nmetrics:\n  port: ${METRICS_PORT:-9181}\n',
    'cfg.yaml',
    env,
  );
  assert.deepEqual(c.listen, [{ host: '0.0.0.0', port: 1081, protocols: ['socks5', 'socks4', 'http'] }]);
  assert.equal(c.allow_open_proxy, true);
  assert.equal(c.limits.max_connections, 500);
  assert.equal(c.auth?.users[0]?.password, '12345'); // a string where the schema wants one
  assert.equal(c.metrics?.port, 9181);
  // Not a number, or more than the variable: still refused where it is.
  const issues = issuesOf('listen:\n  - host: 127.0.0.1\n    port: ${BAD}\n  - host: 127.0.0.3\n    port: 1${PORT}\n  - host: 127.0.0.4\n    port: "1081"\n', env);
  assertIssue(issues, '3:11', /listen\[0\]\.port: must be an integer/);
  assertIssue(issues, '5:11', /listen\[1\]\.port: must be an integer/);
  assertIssue(issues, '7:11', /listen\[2\]\.port: must be an integer/);
  assert.equal(issues.length, 3, issues.join('\n'));
});

test('a quoted value that is only ${VAR} takes the type the schema wants too: in a flow mapping nothing else can hold one', () => {
  // `{ port: ${PORT} }` is a YAML syntax error ("{" opens a mapping there): quoting is the only way.
  const c = parseConfig('listen: [{ host: 127.0.0.1, port: "${PORT}" }]\nupstreams:\n  corp: { type: socks5, host: 10.8.0.1, port: \'${CORP_PORT:-1080}\' }\nallow_open_proxy: "${OPEN}"\n', 'cfg.yaml', { PORT: '1081', OPEN: 'false' });
  assert.deepEqual(c.listen, [{ host: '127.0.0.1', port: 1081, protocols: ['socks5', 'socks4', 'http'] }]);
  assert.equal(c.upstreams.corp?.type === 'socks5' && c.upstreams.corp.port, 1080);
  assert.equal(c.allow_open_proxy, false);
  assertIssue(issuesOf('listen: [{ host: 127.0.0.1, port: "${PORT}" }]\n', { PORT: 'eighty' }), '1:35', /listen\[0\]\.port: must be an integer/);
});

test('a ${VAR} where the schema takes one of several forms takes the scalar one it spells (workers: ${WORKERS:-2}, a port in a rule)', () => {
  const text = 'workers: ${WORKERS:-2}\nrules:\n  - name: p\n    ports:\n      - ${P:-8080}\n      - ${RANGE}\n    action: block\n';
  const c = parseConfig(text, 'cfg.yaml', { RANGE: '9000-9009' });
  assert.equal(c.workers, 2);
  assert.equal(parseConfig(text, 'cfg.yaml', { RANGE: '1-2', WORKERS: 'auto' }).workers, 'auto');
  assert.deepEqual(c.rules[0]!.ports, [8080, '9000-9009'], 'a port is a number, a range stays a string');
  // What it spells still has to fit: the message names the forms there are.
  assertIssue(issuesOf('workers: ${WORKERS}\n', { WORKERS: '0' }), '1:10', /workers: must be an integer from 1 to 256 or "auto"/);
  assertIssue(issuesOf('workers: ${WORKERS}\n', { WORKERS: 'many' }), '1:10', /workers: must be an integer from 1 to 256 or "auto"/);
});

test('binds the kernel refuses together are config errors, not a start-up EADDRINUSE: the admin listener included', () => {
  const listen = (...pairs: string[]): string => `listen:\n${pairs.map((p) => `  - { host: "${p.split('|')[0]}", port: ${p.split('|')[1]} }`).join('\n')}\n`;
  assertIssue(issuesOf(listen('127.0.0.1|1080', '127.0.0.1|1080')), '3:5', /listener 127\.0\.0\.1 port 1080 cannot be bound beside listen\[0\]/);
  assertIssue(issuesOf(`${listen('0.0.0.0|1080', '127.0.0.1|1080')}allow_open_proxy: true\n`), '3:5', /beside listen\[0\] \(0\.0\.0\.0 port 1080\)/);
  assertIssue(issuesOf(`${listen('::|1080', '127.0.0.1|1080')}allow_open_proxy: true\n`), '3:5', /beside listen\[0\] \(:: port 1080\)/);
  // 0.0.0.0 and :: on one port, as Dante (and nginx) take them: the message says :: alone does both.
  for (const [first, second] of [['::', '0.0.0.0'], ['0.0.0.0', '::']]) {
    assertIssue(
      issuesOf(`${listen(`${first}|1080`, `${second}|1080`)}allow_open_proxy: true\n`),
      '3:5',
      /beside listen\[0\] \([:.0]+ port 1080\): "::" takes IPv4 clients as well \(dual-stack\), so list it alone for both families$/,
    );
  }
  assertIssue(issuesOf(`${listen('::|1080', '::1|1080')}allow_open_proxy: true\n`), '3:5', /beside listen\[0\] \(:: port 1080\)$/);
  assertIssue(issuesOf(`${listen('127.0.0.1|1080')}metrics: { port: 1080 }\n`), '3:10', /admin listener 127\.0\.0\.1 port 1080 cannot be bound beside listen\[0\]/);
  // One address however it is spelled: an IPv6 address in another form, an IPv4 one mapped.
  assertIssue(issuesOf(listen('::1|1080', '0:0:0:0:0:0:0:1|1080')), '3:5', /listener 0:0:0:0:0:0:0:1 port 1080 cannot be bound beside listen\[0\] \(::1 port 1080\)/);
  assertIssue(issuesOf(listen('127.0.0.1|1080', '::ffff:127.0.0.1|1080')), '3:5', /beside listen\[0\] \(127\.0\.0\.1 port 1080\)/);
  assertIssue(issuesOf(`${listen('0:0::0|1080', '127.0.0.1|1080')}allow_open_proxy: true\n`), '3:5', /beside listen\[0\] \(0:0::0 port 1080\)/);
  assertIssue(issuesOf(`${listen('::ffff:0.0.0.0|1080', '127.0.0.1|1080')}allow_open_proxy: true\n`), '3:5', /beside listen\[0\]/);
  // Binds that coexist: other families, other addresses, other ports, port 0.
  for (const ok of [listen('::1|1080', '127.0.0.1|1080'), listen('::1|1080', '::ffff:127.0.0.2|1080'), listen('127.0.0.1|1080', '::ffff:127.0.0.2|1080'), listen('127.0.0.1|1080', '127.0.0.2|1080'), listen('127.0.0.1|0', '127.0.0.1|0'), `${listen('127.0.0.2|9180')}metrics: {}\n`]) {
    assert.doesNotThrow(() => parseConfig(ok, 'cfg.yaml', {}), ok);
  }
});

test('a UTF-8 byte order mark (Windows editors) does not shift first-line columns', () => {
  assertIssue(issuesOf('\uFEFFlisten: 5\n'), '1:9', /listen: must be a list/);
  assertIssue(issuesOf('\uFEFFbogus: 1\n'), '1:1', /bogus: unknown key/);
});

test('a password_hash whose scrypt work would outlast a login is refused; the costliest one allowed is accepted', () => {
  const hash = (n: number, r: number, p: number) => `"scrypt$${n}$${r}$${p}$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA=="`;
  // 256 MiB of memory each (the memory cap), run 16 times over: about 10 s a login, and every
  // login runs each cost in use, so with the 10 s handshake_timeout nobody could log in.
  const issues = issuesOf(`auth:
  users:
    - { username: a, password_hash: ${hash(2 ** 18, 8, 16)} }
    - { username: b, password_hash: ${hash(2 ** 20, 2, 16)} }
    - { username: c, password_hash: ${hash(2 ** 15, 8, 17)} }
`);
  assertIssue(issues, '3:37', /scrypt N·r·p is 128 times the work of a hash-password hash; at most 16 times is allowed/);
  assertIssue(issues, '4:37', /scrypt N·r·p is 128 times the work/);
  assertIssue(issues, '5:37', /scrypt p must be between 1 and 16/);
  // Sixteen times hash-password's work, as the largest memory (N·r) with p = 2 or 2^15·8 with p = 16.
  for (const ok of [hash(2 ** 15, 8, 16), hash(2 ** 18, 8, 2), hash(2 ** 20, 2, 2)]) {
    assert.doesNotThrow(() => parseConfig(`auth:\n  users:\n    - { username: a, password_hash: ${ok} }\n`, 'cfg.yaml', {}), ok);
  }
});

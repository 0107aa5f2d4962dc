// `ca` and `servername` are about the TLS to an https:// proxy: on an http upstream without
// `tls: true` they would do nothing, and the proxy (its credentials too) be spoken to in plain text.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import { issuesOf } from '../helpers/config.js';


test('ca or servername on an http upstream without tls: true is refused at its line and column', () => {
  for (const tls of ['', '    tls: false\n']) {
    for (const [key, value] of [['ca', 'corp-ca.pem'], ['servername', 'proxy.corp.example']] as const) {
      const issues = issuesOf(`upstreams:\n  u:\n    type: http\n    host: 10.0.0.1\n    port: 3128\n${tls}    ${key}: ${value}\ndefault: u\n`);
      assert.equal(issues.length, 1, issues.join('\n'));
      const line = tls === '' ? 6 : 7;
      assert.equal(issues[0], `cfg.yaml:${line}:${key.length + 7}: upstreams.u.${key}: applies only with tls: true; without it the proxy is spoken to in plain text, credentials included`);
    }
  }
});

test('ca and servername with tls: true are taken', () => {
  const c = parseConfig('upstreams:\n  u: { type: http, host: 10.0.0.1, port: 443, tls: true, ca: corp-ca.pem, servername: proxy.corp.example }\ndefault: u\n', '/etc/socksgate/cfg.yaml', {});
  const u = c.upstreams['u'];
  assert.ok(u?.type === 'http');
  assert.deepEqual([u.tls, u.ca, u.servername], [true, '/etc/socksgate/corp-ca.pem', 'proxy.corp.example']);
});

test('a servername that is no host name or IP address is refused at its line and column, as a host is', () => {
  for (const [value, re] of [['"https://proxy.corp.example/"', /is not an IP address or a DNS name/], ['"proxy corp"', /is not an IP address or a DNS name/], ['"[::1]"', /without brackets/]] as const) {
    const issues = issuesOf(`upstreams:\n  u:\n    type: http\n    host: 10.0.0.1\n    port: 443\n    tls: true\n    servername: ${value}\ndefault: u\n`);
    assert.equal(issues.length, 1, issues.join('\n'));
    assert.ok(issues[0]!.startsWith('cfg.yaml:7:17: upstreams.u.servername: '), issues[0]);
    assert.match(issues[0]!, re);
  }
  for (const good of ['proxy.corp.example', 'proxy.corp.example.', '10.0.0.1', '::1']) {
    parseConfig(`upstreams:\n  u: { type: http, host: 10.0.0.1, port: 443, tls: true, servername: "${good}" }\ndefault: u\n`, 'cfg.yaml', {});
  }
});

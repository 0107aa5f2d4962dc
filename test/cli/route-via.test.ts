// `socksgate route` for an upstream reached `via` a pool: the member of that hop, as the
// access-log line names it.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { configFile, runCli } from '../helpers/cli.js';


test('route names the member of the pool an upstream is reached via (the hop nearest the action), as the access log does; none for --udp or a BIND through http', async () => {
  const path = await configFile(`
upstreams:
  entry: { type: pool, strategy: failover, members: ["socks5://u:secret@10.0.0.1:1080", "socks5://10.0.0.2:1080"] }
  inner: { type: pool, strategy: failover, members: ["socks5://10.0.0.5:1080"] }
  mid: { type: socks5, host: 10.0.0.3, port: 1080, via: entry }
  exit: { type: socks5, host: 10.0.0.4, port: 1080, via: mid }
  web: { type: http, host: 10.0.0.6, port: 3128, via: entry }
  lone: { type: socks5, host: 10.0.0.7, port: 1080 }
rules:
  - { name: deep, ports: [81], action: exit }
  - { name: web, ports: [82], action: web }
  - { name: lone, ports: [83], action: lone }
default: mid
`);
  const cases: Array<[string[], string]> = [
    [['80'], 'rule=default action=mid member=socks5://u@10.0.0.1:1080 index=-1'],
    [['81'], 'rule=deep action=exit member=socks5://u@10.0.0.1:1080 index=0'],
    [['81', '--bind'], 'rule=deep action=exit member=socks5://u@10.0.0.1:1080 index=0'],
    [['81', '--udp'], 'rule=deep action=exit index=0 unsupported=udp'],
    [['82'], 'rule=web action=web member=socks5://u@10.0.0.1:1080 index=1'],
    [['82', '--bind'], 'rule=web action=web index=1 unsupported=bind'],
    [['83'], 'rule=lone action=lone index=2'],
  ];
  for (const [args, expected] of cases) {
    const r = await runCli(['route', 'example.org', ...args, '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), expected, args.join(' '));
  }
});

// `socksgate route --udp | --bind` and GET /api/route say when the action cannot carry the
// command, as a request finds: its datagrams are dropped as `unsupported`, a BIND gets 0x07.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { explainRoute } from '../../src/route-explain.js';
import { configFile, runCli } from '../helpers/cli.js';
import { routePartsOf } from '../helpers/route.js';

const CONFIG = `
upstreams:
  web: { type: http, host: 10.0.0.1, port: 3128 }
  s4: { type: socks4, host: 10.0.0.2, port: 1080 }
  entry: { type: socks5, host: 10.0.0.3, port: 1080 }
  chained: { type: socks5, host: 10.0.0.4, port: 1080, via: entry }
  webpool: { type: pool, members: ["http://10.0.0.5:3128"] }
rules:
  - { name: w, ports: [1], action: web }
  - { name: f, ports: [2], action: s4 }
  - { name: c, ports: [3], action: chained }
  - { name: p, ports: [4], action: webpool }
  - { name: e, ports: [5], action: entry }
`;



test('route --udp and --bind say unsupported= when the action cannot carry the command, as a request would find', async (t) => {
  const path = await configFile(CONFIG);
  const parts = await routePartsOf(t, path);
  const unsupported = async (port: number, command: 'connect' | 'udp' | 'bind'): Promise<string | undefined> =>
    (await explainRoute(parts, { host: '10.9.9.9', port, command })).unsupported;
  const cases: Array<[number, 'connect' | 'udp' | 'bind', string | undefined]> = [
    [1, 'udp', 'udp'], // http
    [1, 'bind', 'bind'],
    [1, 'connect', undefined],
    [2, 'udp', 'udp'], // socks4
    [2, 'bind', undefined],
    [3, 'udp', 'udp'], // a chain: its datagrams would have to cross the hops
    [3, 'bind', undefined],
    [4, 'udp', 'udp'], // a pool of http members
    [5, 'udp', undefined], // socks5 reached directly
    [6, 'udp', undefined], // direct
    [6, 'bind', undefined],
  ];
  for (const [port, command, expected] of cases) assert.equal(await unsupported(port, command), expected, `${port} ${command}`);

  const cli = await runCli(['route', '10.9.9.9', '1', '--udp', '--config', path]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(cli.stdout.trim(), 'rule=w action=web index=0 unsupported=udp');
  const carried = await runCli(['route', '10.9.9.9', '5', '--udp', '--config', path]);
  assert.equal(carried.stdout.trim(), 'rule=e action=entry index=4');
});

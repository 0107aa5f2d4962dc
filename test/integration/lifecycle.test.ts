// The gateway object's own lifecycle: what reload and close leave behind.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { startGateway } from '../helpers/index.js';

test('a reload that lands after close() applies nothing: no health checks run for a stopped gateway', async (t) => {
  const seen: Socket[] = [];
  const member = createServer((s) => {
    seen.push(s);
    s.destroy();
  });
  member.listen(0, '127.0.0.1');
  await once(member, 'listening');
  t.after(() => member.close());
  const port = (member.address() as AddressInfo).port;

  const gw = await startGateway();
  await gw.close();
  const next = parseConfig(
    stringify({
      listen: [{ host: '127.0.0.1', port: 0 }],
      upstreams: {
        pool: { type: 'pool', members: [`socks5://127.0.0.1:${port}`], health_check: { interval: '50ms', timeout: '1s', target: '127.0.0.1:9' } },
      },
      default: 'pool',
    }),
    '/tmp/socksgate-test.yaml',
    {},
  );
  await gw.gw.reload(next).catch(() => {});
  t.after(() => gw.gw.snapshot.outbounds.forEach((o) => void o.close()));
  // A health check round would start on the next turn and every 50 ms after.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(seen.length, 0);
});

test('a port already taken fails start-up with EADDRINUSE, the proxy listener as the admin listener', async (t) => {
  const taken = createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => taken.close());
  const port = (taken.address() as AddressInfo).port;
  await assert.rejects(startGateway({ listen: [{ host: '127.0.0.1', port }] }), { code: 'EADDRINUSE' });
  await assert.rejects(startGateway({ metrics: { host: '127.0.0.1', port } }), { code: 'EADDRINUSE' });
});

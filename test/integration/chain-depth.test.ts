// Chains of any depth (README: "chains of any depth and mix"): a deep one carries a
// connection without the process warning of a listener leak on the stream the hops share.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { socksConnect, startGateway } from '../helpers/index.js';
import { readAll, startDante, startDestination, startMicrosocks, startTinyproxy } from '../helpers/upstreams.js';

test('a chain of 12 hops (Dante, microsocks, tinyproxy in turn) connects, and no MaxListenersExceededWarning is emitted for the stream every hop hands on', async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const dest = await startDestination();
  t.after(() => dest.close());
  const dante = await startDante({ host: '127.0.0.226' });
  t.after(() => dante.close());
  const micro = await startMicrosocks({ host: '127.0.0.227' });
  t.after(() => micro.close());
  const tiny = await startTinyproxy({ host: '127.0.0.225' });
  t.after(() => tiny.close());
  // Each hop reaches the next server in turn: no server is asked to connect to itself.
  const servers = [
    { type: 'socks5', host: dante.host, port: dante.port },
    { type: 'socks5', host: micro.host, port: micro.port },
    { type: 'http', host: tiny.host, port: tiny.port },
  ];
  const upstreams: Record<string, Record<string, unknown>> = {};
  for (let i = 0; i < 12; i++) upstreams[`hop${i}`] = { ...servers[i % 3], ...(i > 0 ? { via: `hop${i - 1}` } : {}) };
  const gw = await startGateway({ upstreams, default: 'hop11' });
  t.after(() => gw.close());
  for (let i = 0; i < 2; i++) {
    const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: dest.port }, 10_000);
    assert.equal((await readAll(socket)).trim(), 'hello 127.0.0.225', 'the destination is reached from the last hop');
  }
  await new Promise((resolve) => setImmediate(resolve)); // process warnings are emitted on a later tick
  assert.deepEqual(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')), []);
});

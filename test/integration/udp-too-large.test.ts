import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { udpAssociation, udpLogLine } from '../helpers/udp.js';

test('an answer too large for the header in front of it is dropped as too_large, not counted as received', async (t) => {
  const big = createSocket('udp4');
  big.on('message', (_m, r) => big.send(Buffer.alloc(65_507, 1), r.port, r.address));
  big.bind(0, '127.0.0.1');
  await once(big, 'listening');
  t.after(() => big.close());
  const { echo, gw, c } = await udpAssociation(t);
  c.send({ host: '127.0.0.1', port: big.address().port }, 'big please');
  c.send({ host: '127.0.0.1', port: echo.port }, 'small');
  assert.equal((await c.receive())?.data.toString(), 'small');
  assert.equal(await c.receive(300), undefined);
  await c.close();
  const line = await udpLogLine(gw, 2_000);
  assert.deepEqual(line?.['udp'], { sent: 2, received: 1, dropped: { too_large: 1 } });
  assert.equal(line?.['down'], 5);
});

// docs/load-balancers.md is where a balancer's operator learns what socksgate reads of a PROXY
// header. A v2 header longer than the gateway reads (TLVs a balancer adds) closes every
// connection it comes on: the page must give that size and the log line it leaves.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { V2_MAX_LENGTH, encodeProxyV2 } from '../../src/protocol/proxy-protocol.js';
import { closedWithin, startGateway } from '../helpers/index.js';

test('the v2 header size the page gives is the one the gateway reads, and so is the line it logs past it', async (t) => {
  const gw = await startGateway({ listen: [{ host: '127.0.0.1', port: 0, proxy_protocol: { trusted: ['127.0.0.1'] } }] });
  t.after(() => gw.close());
  const client = { command: 'proxy', family: 'inet', source: { host: '198.51.100.9', port: 40000 }, dest: { host: '127.0.0.1', port: 1080 } } as const;
  const tlvValue = V2_MAX_LENGTH + 1 - encodeProxyV2(client).length - 3; // one byte over
  const tlv = Buffer.concat([Buffer.from([0xe0, tlvValue >> 8, tlvValue & 0xff]), Buffer.alloc(tlvValue)]);
  const header = encodeProxyV2(client, tlv);
  assert.equal(header.length, V2_MAX_LENGTH + 1);
  const s = connect({ host: '127.0.0.1', port: gw.port, localAddress: '127.0.0.1' });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(header);
  assert.ok(await closedWithin(s));
  const line = await gw.accessLog((l) => typeof l.error === 'string');
  const error = String(line?.error);
  assert.match(error, /^PROXY header: v2 header of \d+ bytes/);

  const page = (await readFile('docs/load-balancers.md', 'utf8')).replace(/\s+/g, ' ');
  assert.ok(page.includes(`${V2_MAX_LENGTH} bytes`), `the page gives the size read: ${V2_MAX_LENGTH} bytes`);
  assert.ok(page.includes(error.replace(/of \d+ bytes/, 'of N bytes')), `the page quotes the line: ${error}`);
});

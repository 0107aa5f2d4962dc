// Which CAs an https:// upstream is verified against, as README says: Node's built-in list,
// not the system's store; a private CA through `ca` on the upstream, or for every upstream and
// pool member at once through NODE_EXTRA_CA_CERTS, read at start. A certificate that does not
// verify is the member's failure: 0x01, and the log says why.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startCliGateway } from '../helpers/cli.js';
import { socks5Rep } from '../helpers/index.js';
import { tempDir } from '../helpers/temp-dir.js';
import { makePki, startDestination, startTinyproxy, startTlsTerminator } from '../helpers/upstreams.js';

test('an https:// pool member signed by a private CA: refused with 0x01 and the reason logged, trusted with NODE_EXTRA_CA_CERTS', async (t) => {
  const dir = await tempDir('trust');
  const pki = await makePki(dir, { names: ['proxy.test'], ips: ['127.0.0.71'] });
  const dest = await startDestination();
  t.after(() => dest.close());
  const tiny = await startTinyproxy({ host: '127.0.0.72' });
  t.after(() => tiny.close());
  const front = await startTlsTerminator('127.0.0.71', pki, tiny);
  t.after(() => front.close());
  const path = join(dir, 'socksgate.yaml');
  await writeFile(path, [
    'listen: [{ host: 127.0.0.1, port: 0 }]',
    'upstreams:',
    `  p: { type: pool, members: ["https://${front.host}:${front.port}"], max_attempts: 1 }`,
    'default: p',
    '',
  ].join('\n'));
  const to = { host: '127.0.0.1', port: dest.port };

  // SSL_CERT_FILE is how OpenSSL programs (curl, Python) are pointed at a store: Node's list ignores it.
  const untrusted = await startCliGateway(path, [], [], undefined, { env: { SSL_CERT_FILE: pki.caFile } });
  t.after(() => untrusted.child.kill());
  assert.equal(await socks5Rep(untrusted.port, to), 0x01);
  const line = await untrusted.waitFor((l) => l.msg === 'session end');
  assert.match(String(line.error), /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);

  const trusted = await startCliGateway(path, [], [], undefined, { env: { NODE_EXTRA_CA_CERTS: pki.caFile } });
  t.after(() => trusted.child.kill());
  assert.equal(await socks5Rep(trusted.port, to), 0x00);
});

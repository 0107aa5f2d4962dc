import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { startGateway } from '../helpers/index.js';
import { startUdpEchoServer } from '../helpers/udp.js';

// PySocks (Debian's python3-socks): a UDP socksocket runs its own ASSOCIATE, declaring
// DST 0.0.0.0 and the port it bound, then frames every sendto.
const PY_CLIENT = `
import socket, sys, socks
proxy_port, dest_host, dest_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, "127.0.0.1", proxy_port)
s.settimeout(3)
for i in range(3):
    s.sendto(("py%d" % i).encode(), (dest_host, dest_port))
    data, frm = s.recvfrom(2048)
    print(data.decode(), frm[0], frm[1])
s.close()
`;

function runPython(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/python3', ['-c', PY_CLIENT, ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

test('python3-socks UDP client round trips through the gateway (IPv4 and a domain)', async (t) => {
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ dns: { hosts: { 'echo.test': '127.0.0.1' } } });
  t.after(() => gw.close());
  for (const dest of ['127.0.0.1', 'echo.test']) {
    const out = await runPython([String(gw.port), dest, String(echo.port)]);
    assert.deepEqual(
      out.trim().split('\n'),
      [0, 1, 2].map((i) => `py${i} 127.0.0.1 ${echo.port}`),
    );
  }
  assert.equal(echo.peers.length, 6);
});

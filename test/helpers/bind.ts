// BIND clients (RFC 1928 §4: two replies, the second when the peer connects): the `socks`
// package as the real client, and a raw one for byte-level tests.
import type { Socket } from 'node:net';
import { SocksClient, type SocksRemoteHost } from 'socks';
import { Cmd } from '../../src/protocol/constants.js';
import { decodeReply, encodeGreeting, encodeRequest, NEED_DATA } from '../../src/protocol/messages.js';
import { rawClient, readBytes } from './index.js';
import type { TestContext } from './test.js';

/** BIND through the `socks` package: resolves at the first reply, `peer` at the second. */
export function socksBind(
  port: number,
  dest = { host: '127.0.0.1', port: 0 },
): Promise<{ bound: SocksRemoteHost; peer: Promise<{ socket: Socket; remote: SocksRemoteHost }> }> {
  return new Promise((resolve, reject) => {
    const client = new SocksClient({ proxy: { host: '127.0.0.1', port, type: 5 }, command: 'bind', destination: dest, timeout: 5_000 });
    const peer = new Promise<{ socket: Socket; remote: SocksRemoteHost }>((res, rej) => {
      client.once('established', (info) => res({ socket: info.socket, remote: info.remoteHost! }));
      client.once('error', rej);
    });
    peer.catch(() => {});
    client.once('bound', (info) => resolve({ bound: info.remoteHost!, peer }));
    client.once('error', reject);
    client.connect();
  });
}

/**
 * A raw client that sent the no-auth greeting and a BIND for `dest` (with `extra` in the same
 * packet) from `host` and read the method reply, returned as `method`. Socket errors are swallowed: the
 * tests look at replies and closes.
 */
export async function rawBind(
  port: number,
  dest = { host: '0.0.0.0', port: 0 },
  extra = Buffer.alloc(0),
  host = '127.0.0.1',
): Promise<{ s: Socket; method: Buffer }> {
  const s = await rawClient(port, host);
  s.on('error', () => {});
  s.write(Buffer.concat([encodeGreeting([0]), encodeRequest(Cmd.BIND, dest), extra]));
  return { s, method: await readBytes(s, 2) };
}

/** One reply read off a raw client (10 bytes for an IPv4 BND). */
export async function readReply(s: Socket): Promise<{ rep: number; bound: { host: string; port: number } } | undefined> {
  const r = decodeReply(await readBytes(s, 10));
  return r === NEED_DATA ? undefined : r.value;
}

/**
 * A raw BIND for `name` (greeting and request in one write), reset once `dns` has been asked
 * for the name: until its first reply the gateway does not read the client, so a FIN would not
 * be seen yet. Returns how many A queries for the name the server had by then (0: never asked).
 */
export async function resetDuringBindLookup(t: TestContext, port: number, dns: { queries(name: string, type?: 'A'): number }, name: string): Promise<number> {
  const s = await rawClient(port);
  s.on('error', () => {});
  t.after(() => s.destroy());
  // Not waiting for the method reply: it goes out with the request's reply, the two together.
  s.write(Buffer.concat([encodeGreeting([0]), encodeRequest(Cmd.BIND, { host: name, port: 0 })]));
  for (let i = 0; i < 250 && dns.queries(name, 'A') === 0; i++) await new Promise((r) => setTimeout(r, 20));
  s.resetAndDestroy();
  return dns.queries(name, 'A');
}

// The PROXY protocol step of a listener with `proxy_protocol`: it runs between accept and the
// protocol's first byte, and only decides who the client is. Trusted peers (the load
// balancers) must send a header; anyone else sending one is closed, since a header is a
// claim to be someone else and only a balancer may make it.

import type { Socket } from 'node:net';
import { ProtocolError } from '../errors.js';
import { unmapped } from '../protocol/address.js';
import { NEED_DATA, decodeProxyHeader, type DecodedHeader } from '../protocol/proxy-protocol.js';
import type { Address } from '../protocol/types.js';
import { cidrSetOf, type CidrSet } from '../router/cidrs.js';

/** Built once per listener from `listen[].proxy_protocol`. */
export interface ProxyHeaderPolicy {
  readonly trusted: CidrSet;
}

export function proxyHeaderPolicy(cfg: { trusted: readonly string[] } | undefined): ProxyHeaderPolicy | undefined {
  return cfg ? { trusted: cidrSetOf(cfg.trusted) } : undefined;
}

// Enough bytes to tell a header's start from any SOCKS or HTTP first bytes: "PROXY " (v1)
// or the 12-byte v2 signature. No SOCKS version byte or HTTP method begins either.
const V1_START = Buffer.from('PROXY ', 'latin1');
const V2_START = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/**
 * Reads a PROXY v1/v2 header from `socket` (paused, nothing read yet) and leaves every byte
 * after it unread, the socket paused, for the protocol that follows.
 *
 * Resolves the client address the header names, or undefined when the socket's own peer
 * stays the client: a v2 LOCAL or v1 UNKNOWN header (the balancer's own health check), or an
 * untrusted peer that sent no header. Rejects with ProtocolError when a trusted peer sends
 * none or a malformed one (a balancer set up for the protocol always sends one, so anything
 * else is not from it), when an untrusted peer sends one, when the socket closes first or was
 * reset before it was accepted (its peer unknown), or with "handshake timeout" after
 * `timeoutMs`, what is left of handshake_timeout, the socket destroyed (0: bounded only by
 * whoever destroys the socket).
 */
export function readProxyHeader(socket: Socket, policy: ProxyHeaderPolicy, timeoutMs = 0): Promise<Address | undefined> {
  // No peer address: the connection was reset before it was accepted (HAProxy's checks send
  // their header and reset at once), so whether the peer is trusted cannot be told, and
  // nothing could be sent back to it anyway.
  if (socket.remoteAddress === undefined) return Promise.reject(new ProtocolError('reset before its PROXY header was read'));
  const peer = unmapped(socket.remoteAddress);
  const step = policy.trusted.hasText(peer) ? decodeProxyHeader : untrusted(peer);
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    // Cut at the deadline, as the handshake's own timeout cuts a greeting: nothing to answer,
    // and a peer still sending (each byte restarts the socket's idle timer) is read no longer.
    const onTimeout = (): void => {
      socket.destroy();
      finish(new ProtocolError('handshake timeout'));
    };
    const timer = timeoutMs > 0 ? setTimeout(onTimeout, timeoutMs) : undefined;
    const finish = (err: unknown, found?: { value: Address | undefined; rest: Buffer }): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (err !== undefined) return reject(err);
      // Still inside 'data', before any 'end': unshift() is always allowed here.
      if (found!.rest.length > 0) socket.unshift(found!.rest);
      resolve(found!.value);
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]); // bounded: the decoders cap it
      let decoded: DecodedHeader;
      try {
        decoded = step(buf);
      } catch (err) {
        return finish(err);
      }
      if (decoded === NEED_DATA) return;
      const h = decoded.value;
      finish(undefined, { value: 'source' in h ? h.source : undefined, rest: buf.subarray(decoded.size) });
    };
    const onEnd = (): void => finish(new ProtocolError(buf.length === 0 ? 'closed before the first byte' : 'closed during the PROXY header'));
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}

/**
 * For a peer that may not send a header: NEED_DATA while the bytes could still be one, an
 * error once they are one, else "no header" (size 0, so every byte goes to the protocol).
 */
function untrusted(peer: string): (buf: Buffer) => DecodedHeader {
  return (buf) => {
    for (const start of [V1_START, V2_START]) {
      const n = Math.min(buf.length, start.length);
      if (!buf.subarray(0, n).equals(start.subarray(0, n))) continue;
      if (n < start.length) return NEED_DATA;
      throw new ProtocolError(`PROXY header from untrusted peer ${peer}`);
    }
    return { value: { version: 2, command: 'local', family: 'unspec' }, size: 0 };
  };
}

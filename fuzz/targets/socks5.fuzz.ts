// The SOCKS5 server handshake (RFC 1928, RFC 1929) as a session drives it: bytes arrive in
// chunks of any size, the session answers each event, and every decoded address goes back
// out in the reply. Only ProtocolError may come out, and failure() must always answer it.

import { ProtocolError, Rep } from '../../src/errors.js';
import { Method } from '../../src/protocol/constants.js';
import { ServerHandshake } from '../../src/protocol/handshake.js';
import { decodeAuthRequest, decodeGreeting, decodeReply, decodeRequest } from '../../src/protocol/messages.js';
import type { HandshakeEvent } from '../../src/protocol/types.js';
import { expect, refusedOrValue } from './check.js';

export function fuzz(data: Buffer): void {
  if (data.length < 2) return;
  const flags = data[0]!;
  const body = data.subarray(2);
  // The pure decoders on the raw bytes (the client side reads replies with decodeReply).
  for (const decode of [decodeGreeting, decodeAuthRequest, decodeRequest, decodeReply]) refusedOrValue(() => decode(body));
  session(body, flags, 1 + (data[1]! % 64));
}

function session(bytes: Buffer, flags: number, chunk: number): void {
  const hs = new ServerHandshake();
  for (let off = 0; off < bytes.length && !finished(hs); off += chunk) {
    let events: HandshakeEvent[];
    try {
      events = hs.receive(bytes.subarray(off, off + chunk));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      hs.failure(err);
      expect(finished(hs), 'failure() ends the handshake');
      return;
    }
    while (events.length > 0) {
      const ev = events.shift()!;
      if (ev.type === 'greeting') {
        // NMETHODS 0 decodes to an empty offer, which gets NO_ACCEPTABLE: a refusal, not a fault.
        expect(ev.methods.length <= 255, 'a greeting offers at most 255 methods');
        const method = flags & 1 ? Method.USERPASS : Method.NO_AUTH;
        hs.selectMethod(ev.methods.includes(method) ? method : Method.NO_ACCEPTABLE);
      } else if (ev.type === 'auth') {
        expect(Buffer.byteLength(ev.username, 'latin1') <= 255, 'RFC 1929: a username is at most 255 bytes');
        hs.authResult((flags & 2) !== 0);
      } else {
        expect(ev.dest.port >= 0 && ev.dest.port <= 65535, 'a port is 16 bits');
        // The reply carries the decoded address back: it must always be encodable.
        refusedOrValue(() => hs.reply(Rep.SUCCEEDED, ev.dest));
        hs.remainder();
        return;
      }
      if (finished(hs)) return;
      try {
        events.push(...hs.receive(Buffer.alloc(0)));
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        hs.failure(err);
        return;
      }
    }
  }
}

/** A function, so that TypeScript does not narrow `state` across the calls that change it. */
function finished(hs: ServerHandshake): boolean {
  return hs.state === 'done';
}

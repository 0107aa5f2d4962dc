// The SOCKS4/4a front: one request, CONNECT or BIND, replies 0x5A granted / 0x5B rejected.
// SOCKS4 carries no password, so it is served only where a client may be anonymous: no auth
// configured, or `allow_anonymous: true`. The USERID field is logged, never trusted.

import { GatewayError, ProtocolError, Rep, toRep } from '../../errors.js';
import { NEED_DATA, peerText, unmapped } from '../../protocol/address.js';
import { EMPTY, Socks4Cmd, Socks4Reply } from '../../protocol/constants.js';
import { decodeSocks4Request, encodeSocks4Reply, fitsSocks4Reply, Socks4RequestError, type Socks4Request } from '../../protocol/socks4.js';
import type { Address } from '../../protocol/types.js';
import type { ClientConnection } from '../client.js';
import { closeClient } from '../close.js';
import { formatAddress } from '../context.js';
import { serve } from '../pipeline.js';
import type { ChunkReader } from '../reader.js';
import type { Front } from '../request.js';
import { requestContext } from './context.js';

const REJECTED = encodeSocks4Reply(Socks4Reply.REJECTED);
const AUTH_REQUIRED = new GatewayError('GW_ERR_AUTH_REQUIRED', 'SOCKS4 carries no password: auth is required', Rep.NOT_ALLOWED);

export async function socks4Front(conn: ClientConnection, reader: ChunkReader, first: Buffer): Promise<void> {
  const { socket: client, record, snapshot } = conn;
  let buf = first;
  let decoded: { value: Socks4Request; size: number } | typeof NEED_DATA;
  try {
    // The codec bounds the request (USERID and HOSTNAME at 255 bytes each), so buf stays small.
    for (decoded = decodeSocks4Request(buf); decoded === NEED_DATA; decoded = decodeSocks4Request(buf)) {
      const chunk = await reader.next();
      conn.rearm();
      if (chunk === null) {
        record.error ??= 'closed during handshake';
        return;
      }
      buf = Buffer.concat([buf, chunk]);
    }
  } catch (err) {
    record.error ??= err instanceof Error ? err.message : String(err);
    reader.detach();
    if (client.destroyed) return;
    // 0x5B says only "rejected": the log keeps the SOCKS-style code (0x07 for an unknown CD), as SOCKS5 logs it.
    if (err instanceof ProtocolError) record.rep = err.rep;
    if (err instanceof Socks4RequestError) {
      if (err.dest) record.dest = formatAddress(err.dest);
      if (err.userId !== '') record.userid = err.userId;
    }
    closeClient(client, REJECTED);
    return;
  }
  reader.detach();
  conn.handshakeDone();
  const { cmd, dest, userId } = decoded.value;
  // An empty USERID is none sent: left out of the line, as every field without a value is.
  if (userId !== '') record.userid = userId;
  record.cmd = cmd === Socks4Cmd.BIND ? 'bind' : 'connect';
  record.dest = formatAddress(dest);
  let rest = buf.subarray(decoded.size);
  let grants = 0;
  const front: Front = {
    granted(bound) {
      const at = bound();
      if (cmd === Socks4Cmd.BIND && grants++ === 0) assertNameable(at, client.localAddress);
      client.write(encodeSocks4Reply(Socks4Reply.GRANTED, at));
    },
    refused(err) {
      closeClient(client, REJECTED);
      return toRep(err);
    },
    remainder() {
      const r = rest;
      rest = EMPTY;
      return r;
    },
  };
  const auth = snapshot.config.auth;
  if (auth && !auth.allow_anonymous) {
    record.error = AUTH_REQUIRED.message;
    record.rep = front.refused(AUTH_REQUIRED);
    return;
  }
  await serve(requestContext(conn, front, record, { protocol: 'socks4', command: record.cmd, dest }));
}

/**
 * BIND's first reply tells the client where its peer must connect, in DSTIP's four bytes. An
 * IPv6 listener fits only as 0.0.0.0, which the client reads as "the address you reached me
 * on" (SOCKS4 spec): true only when that is the listener's own address. Anything else would
 * send the peer somewhere nobody waits for it, so the BIND is refused (logged 0x08).
 */
function assertNameable(at: Address, local: string | undefined): void {
  if (fitsSocks4Reply(at.host)) return;
  if (local !== undefined && unmapped(peerText(local)) === unmapped(peerText(at.host))) return;
  throw new GatewayError('GW_ERR_SOCKS4_FAMILY', `SOCKS4 cannot name the BIND listener ${formatAddress(at)}`, Rep.ADDRESS_TYPE_NOT_SUPPORTED);
}

// The SOCKS4/4a codec (src/protocol/socks4.ts) as the SOCKS4 front drives it: the request is
// decoded from everything buffered so far, one chunk more each time. Only ProtocolError may
// come out; a request decodes the same however its bytes are split (a refused prefix means
// a refused whole); what decodes with a UTF-8 USERID encodes back to the same request;
// replies round-trip.

import { isUtf8 } from 'node:buffer';
import { NEED_DATA } from '../../src/protocol/address.js';
import { MAX_HOSTNAME, MAX_USERID, type Socks4Reply } from '../../src/protocol/constants.js';
import { decodeSocks4Reply, decodeSocks4Request, encodeSocks4Reply, encodeSocks4Request, type Socks4Request } from '../../src/protocol/socks4.js';
import { expect, refusedOrValue, splitAgrees, type Decoded } from './check.js';

export function fuzz(data: Buffer): void {
  if (data.length < 1) return;
  const chunk = 1 + (data[0]! % 32);
  const body = data.subarray(1);
  const whole: Decoded<Socks4Request> = refusedOrValue(() => decodeSocks4Request(body));
  splitAgrees(body, chunk, whole, (b) => refusedOrValue(() => decodeSocks4Request(b)), same, 'request');
  if (whole !== undefined && whole !== NEED_DATA) {
    expect(whole.size <= body.length && whole.size <= 8 + MAX_USERID + MAX_HOSTNAME + 2, 'a request is bounded and within the bytes');
    // A USERID that is not UTF-8 is read one char a byte, for the log; only a UTF-8 one is encoded back.
    const bytes = body.subarray(0, whole.size);
    if (isUtf8(bytes.subarray(8, bytes.indexOf(0, 8)))) roundTrip(whole.value, bytes);
  }
  reply(body);
}

function roundTrip(req: Socks4Request, bytes: Buffer): void {
  const encoded = encodeSocks4Request(req.cmd, req.dest, req.userId);
  const again = decodeSocks4Request(encoded);
  expect(again !== NEED_DATA && again.size === encoded.length && same(again.value, req), 'what decodes encodes to the same request');
  const is4a = bytes[4] === 0 && bytes[5] === 0 && bytes[6] === 0;
  if (!is4a) expect(encoded.equals(bytes), 'a SOCKS4 request encodes to its own bytes');
}

function reply(body: Buffer): void {
  const r = refusedOrValue(() => decodeSocks4Reply(body));
  if (r === undefined || r === NEED_DATA) return;
  const encoded = encodeSocks4Reply(r.value.code as Socks4Reply, r.value.bound);
  expect(encoded.equals(body.subarray(0, 8)), 'a reply encodes to its own bytes');
}

function same(a: Socks4Request, b: Socks4Request): boolean {
  return a.cmd === b.cmd && a.dest.host === b.dest.host && a.dest.port === b.dest.port && a.userId === b.userId;
}

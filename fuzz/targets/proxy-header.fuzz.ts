// The PROXY protocol decoder (src/protocol/proxy-protocol.ts) as a listener's header step
// drives it: everything buffered so far, one chunk more each time. Only ProtocolError may come
// out; a header decodes the same however its bytes are split (a refused prefix means a
// refused whole); a header stays within the spec's bounds; what decodes encodes back.

import { isIPv4, isIPv6 } from 'node:net';
import { ProtocolError } from '../../src/errors.js';
import { NEED_DATA, V1_MAX_LENGTH, V2_MAX_LENGTH, decodeProxyHeader, encodeProxyV1, encodeProxyV2, type ProxyHeader } from '../../src/protocol/proxy-protocol.js';
import { expect, refusedOrValue, splitAgrees, type Decoded } from './check.js';

const onlyProtocolErrors = (err: unknown): boolean => err instanceof ProtocolError;

export function fuzz(data: Buffer): void {
  if (data.length < 1) return;
  const chunk = 1 + (data[0]! % 32);
  const body = data.subarray(1);
  const whole: Decoded<ProxyHeader> = refusedOrValue(() => decodeProxyHeader(body), onlyProtocolErrors);
  splitAgrees(body, chunk, whole, (b) => refusedOrValue(() => decodeProxyHeader(b), onlyProtocolErrors), same, 'header');
  if (whole === undefined || whole === NEED_DATA) return;
  const { value, size } = whole;
  expect(size <= body.length && size <= (value.version === 1 ? V1_MAX_LENGTH : V2_MAX_LENGTH), 'a header is bounded and within the bytes');
  if (value.family === 'inet' || value.family === 'inet6') {
    const valid = value.family === 'inet' ? isIPv4 : isIPv6;
    for (const a of [value.source, value.dest]) expect(valid(a.host) && Number.isInteger(a.port) && a.port >= 0 && a.port <= 0xffff, 'addresses are of their family');
  }
  roundTrip(value, body.subarray(0, size));
}

function roundTrip(h: ProxyHeader, bytes: Buffer): void {
  if (h.version === 1) {
    // UNKNOWN may carry anything before its CRLF; TCP4 lines are kept as sent; TCP6 addresses
    // are read in RFC 5952 form (`::0` is `::`), so a TCP6 line encodes to its canonical form,
    // which reads back the same and encodes to itself.
    if (h.family === 'unspec') return;
    const encoded = encodeProxyV1(h);
    if (h.family === 'inet') return expect(encoded.equals(bytes), 'a v1 TCP4 line encodes to its own bytes');
    const again = decodeProxyHeader(encoded);
    expect(again !== NEED_DATA && again.size === encoded.length && same(again.value, h), 'a v1 TCP6 line round-trips');
    expect(encodeProxyV1(again.value).equals(encoded), 'a v1 TCP6 line encodes to its canonical form, which encodes to itself');
    return;
  }
  if (h.command === 'local') {
    const again = decodeProxyHeader(encodeProxyV2(h, bytes.subarray(16)));
    expect(again !== NEED_DATA && same(again.value, h), 'a v2 LOCAL header round-trips');
    return;
  }
  if (h.family === 'unspec') return;
  const len = h.family === 'inet' ? 4 : 16;
  const encoded = encodeProxyV2(h, bytes.subarray(16 + 2 * len + 4));
  const again = decodeProxyHeader(encoded);
  expect(again !== NEED_DATA && again.size === encoded.length && same(again.value, h), 'a v2 header round-trips');
  // The encoder writes PROXY over a stream; other version/command/transport bytes differ only there.
  if (bytes[12] === 0x21 && (bytes[13]! & 0x0f) === 1) expect(encoded.equals(bytes), 'a v2 stream header encodes to its own bytes');
}

function same(a: ProxyHeader, b: ProxyHeader): boolean {
  if (a.version !== b.version || a.command !== b.command || a.family !== b.family) return false;
  if (a.family === 'unspec' || b.family === 'unspec') return a.family === b.family;
  return a.source.host === b.source.host && a.source.port === b.source.port && a.dest.host === b.dest.host && a.dest.port === b.dest.port;
}

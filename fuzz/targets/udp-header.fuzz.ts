// The RFC 1928 §7 UDP header, both ways: any datagram decodes or is refused with
// ProtocolError; what decodes encodes again, and a second round trip changes nothing.

import { decodeUdpDatagram, encodeUdpDatagram } from '../../src/protocol/messages.js';
import { expect, refusedOrValue } from './check.js';

export function fuzz(data: Buffer): void {
  const d = refusedOrValue(() => decodeUdpDatagram(data));
  if (d === undefined) return;
  expect(d.frag === data[2], 'FRAG is the third byte');
  const once = refusedOrValue(() => encodeUdpDatagram(d.dest, d.payload, d.frag));
  if (once === undefined) return;
  const again = decodeUdpDatagram(once);
  expect(again.dest.port === d.dest.port && again.frag === d.frag, 'port and FRAG survive a round trip');
  expect(again.payload.equals(d.payload), 'the payload survives a round trip');
  const twice = encodeUdpDatagram(again.dest, again.payload, again.frag);
  expect(twice.equals(once), 'encoding what was decoded is a fixed point');
}

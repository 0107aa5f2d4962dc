// What every UdpChannel shares: its listeners, its drop reporting, and resolving
// datagram destinations by name with a bound on lookups in flight.

import type { Logger } from 'pino';
import type { DnsResolver, ResolvedAddress } from '../dns/types.js';
import { HELD_DATAGRAM_BYTES, type ByteBudget } from './byte-budget.js';
import type { Destination, UdpChannel } from './types.js';

type DropListener = (reason: string, direction: 'up' | 'down', bytes?: number) => void;
type MessageListener = (from: Destination, payload: Buffer) => void;

export class ChannelEvents {
  readonly #messages: MessageListener[] = [];
  readonly #drops: DropListener[] = [];

  readonly onMessage: UdpChannel['onMessage'] = (l) => void this.#messages.push(l);
  readonly onDrop: NonNullable<UdpChannel['onDrop']> = (l) => void this.#drops.push(l);

  message(from: Destination, payload: Buffer): void {
    for (const l of this.#messages) l(from, payload);
  }

  /**
   * A datagram the channel could not carry: the association counts it. `bytes`: the payload of
   * a client datagram the channel took and then never handed to a socket (the association
   * counted it as sent when it took it, and takes that back).
   */
  readonly drop = (reason: string, direction: 'up' | 'down' = 'up', bytes?: number): void => {
    for (const l of this.#drops) l(reason, direction, bytes);
  };
}

/**
 * Resolves a datagram's destination name, then hands its addresses (never none) to `send`.
 * At most `max` lookups wait at once, and the datagrams waiting on them hold their bytes
 * (and HELD_DATAGRAM_BYTES each) of `budget`; a datagram past either, or whose name does not resolve, is dropped (UDP
 * promises nothing, and memory must stay bounded).
 */
export function datagramResolver(
  dns: DnsResolver,
  max: number,
  drop: (reason: string, direction: 'up', bytes: number) => void,
  budget: ByteBudget,
  log?: Logger,
): (host: string, bytes: number, send: (addresses: ResolvedAddress[]) => void) => void {
  let inFlight = 0;
  return (host, payloadBytes, send) => {
    const bytes = payloadBytes + HELD_DATAGRAM_BYTES;
    if (inFlight >= max || !budget.take(bytes)) return drop('queue_full', 'up', payloadBytes);
    inFlight++;
    const settled = (): void => {
      inFlight--;
      budget.give(bytes);
    };
    dns.lookup(host).then(
      (addresses) => {
        settled();
        if (addresses.length > 0) send(addresses);
        else drop('unresolved', 'up', payloadBytes);
      },
      (err: unknown) => {
        settled();
        log?.debug({ err, host }, 'UDP destination not resolved');
        drop('unresolved', 'up', payloadBytes);
      },
    );
  };
}

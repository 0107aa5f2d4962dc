// `direct` for UDP (RFC 1928 §7): the gateway sends each datagram itself, from one
// unconnected socket per address family shared by every destination of one association,
// so an answer arrives with its real source and can be named in the client's header.

import { literalLookup } from '../dns/literal-lookup.js';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { DnsResolver, ResolvedAddress } from '../dns/types.js';
import { ASSOCIATION_UDP_BYTES, ByteBudget } from './byte-budget.js';
import type { AddressSet, EgressGuard } from './egress.js';
import { ChannelEvents, datagramResolver } from './udp-channel-events.js';
import type { Destination, UdpChannel } from './types.js';

export interface DirectUdpDeps {
  dns: DnsResolver;
  log?: Logger;
  /** Name lookups in flight beyond this: their datagrams are dropped. */
  maxQueued?: number;
  /** Bytes of datagrams held at once (waiting for a name or in a send queue); beyond it they are dropped. */
  budget?: ByteBudget;
  /** How many destinations are remembered for letting their answers through. */
  maxPeers?: number;
  /** Datagrams to addresses it denies are dropped as `denied` (checked after resolution). */
  egress?: EgressGuard;
}


const DEFAULT_MAX_QUEUED = 256;
const DEFAULT_MAX_PEERS = 4096;

/**
 * One association's direct channel. Only answers from an address:port this channel
 * sent to are passed on (the client asked for those; anything else is unsolicited).
 */
export function openDirectUdp(deps: DirectUdpDeps): UdpChannel {
  const maxQueued = deps.maxQueued ?? DEFAULT_MAX_QUEUED;
  const maxPeers = deps.maxPeers ?? DEFAULT_MAX_PEERS;
  const sockets = new Map<4 | 6, Socket>();
  const peers = new Set<string>();
  const events = new ChannelEvents();
  const drop = events.drop;
  const budget = deps.budget ?? new ByteBudget(ASSOCIATION_UDP_BYTES);
  const resolve = datagramResolver(deps.dns, maxQueued, drop, budget, deps.log);
  let closed = false;

  function socketFor(family: 4 | 6): Socket {
    let s = sockets.get(family);
    if (s) return s;
    // Unbound: the first send binds it to the wildcard address and a free port.
    s = createSocket({ type: family === 4 ? 'udp4' : 'udp6', lookup: literalLookup });
    s.on('message', (msg: Buffer, rinfo: RemoteInfo) => onAnswer(msg, rinfo));
    s.on('error', (err) => deps.log?.debug({ err }, 'direct UDP socket error'));
    sockets.set(family, s);
    return s;
  }

  function onAnswer(msg: Buffer, rinfo: RemoteInfo): void {
    if (!peers.has(peerKey(rinfo.address, rinfo.port))) return drop('unsolicited', 'down');
    events.message({ host: rinfo.address, port: rinfo.port }, msg);
  }

  function sendTo(addr: ResolvedAddress, port: number, payload: Buffer, lift?: AddressSet): void {
    if (closed) return drop('closed');
    if (deps.egress?.denies(addr.address, lift)) return denied(addr.address);
    const s = socketFor(addr.family);
    const key = peerKey(addr.address, port);
    if (!peers.has(key)) {
      // FIFO eviction: a Set iterates in insertion order.
      if (peers.size >= maxPeers) peers.delete(peers.values().next().value!);
      peers.add(key);
    }
    const failed = (err: Error): void => {
      deps.log?.debug({ err, to: addr.address, port }, 'direct UDP send failed');
      drop('send_error');
    };
    // A synchronous throw (a port out of range, say) goes to `failed` as well.
    if (!budget.send(payload, (done) => s.send(payload, port, addr.address, done), failed)) drop('queue_full');
  }

  function send(dest: Destination, payload: Buffer, lift?: AddressSet): void {
    if (closed) return drop('closed');
    const family = isIP(dest.host);
    if (family === 4 || family === 6) return sendTo({ address: dest.host, family }, dest.port, payload, lift);
    resolve(dest.host, payload.length, (address) => sendTo(address, dest.port, payload, lift));
  }

  function denied(address: string): void {
    deps.egress?.denied('udp');
    deps.log?.debug({ to: address, reason: 'egress denied' }, 'UDP datagram dropped');
    drop('denied');
  }

  return {
    send,
    onMessage: events.onMessage,
    onDrop: events.onDrop,
    get local(): Destination | undefined {
      for (const s of sockets.values()) {
        try {
          const a = s.address();
          return { host: a.address, port: a.port };
        } catch {
          // not bound yet
        }
      }
      return undefined;
    },
    close(): void {
      if (closed) return;
      closed = true;
      for (const s of sockets.values()) s.close();
      sockets.clear();
      peers.clear();
    },
  };
}

function peerKey(address: string, port: number): string {
  return `${address}#${port}`;
}

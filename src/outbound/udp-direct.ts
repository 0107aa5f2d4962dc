// `direct` for UDP (RFC 1928 §7): the gateway sends each datagram itself, from one socket
// per address family shared by every destination of one association, so an answer arrives
// with its real source and can be named in the client's header. While a socket has had one
// destination it is connected to it: sends name no address, and the kernel lets through
// only that destination's answers.

import { literalLookup } from '../dns/literal-lookup.js';
import { peerText, unmapped } from '../protocol/address.js';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { DnsResolver, ResolvedAddress } from '../dns/types.js';
import { ASSOCIATION_UDP_BYTES, ByteBudget } from './byte-budget.js';
import type { AddressSet, EgressGuard } from './egress.js';
import { ChannelEvents, datagramResolver } from './udp-channel-events.js';
import { DatagramSender } from './udp-send.js';
import { bindKeepingPort, connectedPeer } from './udp-socket.js';
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

/** One family's socket: connected to its only destination until a second one comes. */
interface FamilySocket {
  socket: Socket;
  sender: DatagramSender;
  /** The one destination while connected (as the kernel names it); undefined once shared, or before the first send. */
  peer: Destination | undefined;
  /** The address and port the client asked for, which `peer` is. */
  asked: { address: string; port: number } | undefined;
  shared: boolean;
}

/** A literal destination as last checked: the same `dest` and lift need no new check. */
interface Checked {
  dest: Destination;
  lift: AddressSet | undefined;
  address: ResolvedAddress;
  denied: boolean;
}

/**
 * One association's direct channel. Only answers from an address:port this channel
 * sent to are passed on (the client asked for those; anything else is unsolicited).
 */
export function openDirectUdp(deps: DirectUdpDeps): UdpChannel {
  const maxQueued = deps.maxQueued ?? DEFAULT_MAX_QUEUED;
  const maxPeers = deps.maxPeers ?? DEFAULT_MAX_PEERS;
  const sockets = new Map<4 | 6, FamilySocket>();
  const peers = new Set<string>();
  const events = new ChannelEvents();
  const drop = events.drop;
  const budget = deps.budget ?? new ByteBudget(ASSOCIATION_UDP_BYTES);
  const resolve = datagramResolver(deps.dns, maxQueued, drop, budget, deps.log);
  const failed = (err: Error): void => {
    deps.log?.debug({ err }, 'direct UDP send failed');
    drop('send_error');
  };
  let last: Checked | undefined;
  let closed = false;

  function socketFor(family: 4 | 6): FamilySocket {
    const known = sockets.get(family);
    if (known) return known;
    const socket = createSocket({ type: family === 4 ? 'udp4' : 'udp6', lookup: literalLookup });
    // A socket that cannot keep its port over a disconnect is never connected; its first send binds it.
    const shared = !bindKeepingPort(socket, family);
    const fs: FamilySocket = { socket, sender: new DatagramSender(socket, budget, failed), peer: undefined, asked: undefined, shared };
    socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => onAnswer(fs, msg, rinfo));
    // A connected socket also hears of its destination's ICMP errors (ECONNREFUSED).
    socket.on('error', (err) => deps.log?.debug({ err }, 'direct UDP socket error'));
    sockets.set(family, fs);
    return fs;
  }

  function onAnswer(fs: FamilySocket, msg: Buffer, rinfo: RemoteInfo): void {
    const peer = fs.peer;
    // Connected, the kernel passes only the peer's datagrams; the check is for one that was
    // queued in the moment between bind and connect. The same `from` for every answer.
    if (peer !== undefined) {
      if (rinfo.port === peer.port && rinfo.address === peer.host) return events.message(peer, msg);
      return drop('unsolicited', 'down');
    }
    if (!peers.has(peerKey(rinfo.address, rinfo.port))) return drop('unsolicited', 'down');
    events.message({ host: rinfo.address, port: rinfo.port }, msg);
  }

  function sendTo(addr: ResolvedAddress, port: number, payload: Buffer): void {
    if (closed) return drop('closed', 'up', payload.length);
    const fs = socketFor(addr.family);
    if (!fs.shared && !isAsked(fs, addr.address, port) && !route(fs, addr.address, port)) return;
    if (fs.shared) {
      const key = peerKey(addr.address, port);
      if (!peers.has(key)) {
        // FIFO eviction: a Set iterates in insertion order.
        if (peers.size >= maxPeers) peers.delete(peers.values().next().value!);
        peers.add(key);
      }
      if (!fs.sender.send(undefined, payload, port, addr.address)) drop('queue_full', 'up', payload.length);
    } else if (!fs.sender.send(undefined, payload)) drop('queue_full', 'up', payload.length);
  }

  /**
   * A socket's first destination connects it; a second one shares it, unconnected, from then
   * on. False (counted) when the datagram cannot go at all.
   */
  function route(fs: FamilySocket, address: string, port: number): boolean {
    try {
      if (fs.asked === undefined) {
        // Connecting to an IP literal completes before it returns (literalLookup); the
        // callback takes a failure that would otherwise be emitted later.
        fs.socket.connect(port, address, () => {});
        fs.peer = connectedPeer(fs.socket);
        // connect(2) refused (no route, say): unconnected, sends name their address.
        if (fs.peer !== undefined) {
          fs.asked = { address, port };
          return true;
        }
      } else {
        fs.socket.disconnect();
        peers.add(peerKey(fs.peer!.host, fs.peer!.port));
      }
    } catch (err) {
      failed(err as Error); // a port out of range, say
      return false;
    }
    fs.peer = undefined;
    fs.asked = undefined;
    fs.shared = true;
    return true;
  }

  function send(dest: Destination, payload: Buffer, lift?: AddressSet, resolved?: readonly ResolvedAddress[]): void {
    if (closed) return drop('closed', 'up', payload.length);
    let c = last;
    if (c === undefined || c.dest !== dest || c.lift !== lift) {
      const family = isIP(dest.host);
      if (family !== 4 && family !== 6) {
        // The rules' own answer, when they resolved the name: no second lookup.
        if (resolved !== undefined && resolved.length > 0) return checkedSend(resolved, dest.port, payload, lift);
        return resolve(dest.host, payload.length, (addresses) => checkedSend(addresses, dest.port, payload, lift));
      }
      // A header with ATYP 3 carries the text the client wrote: once the socket is shared,
      // answers are matched by the text Node gives their source.
      const address = asSent({ address: peerText(dest.host), family });
      c = last = { dest, lift, address, denied: deps.egress?.denies(dest.host, lift) ?? false };
    }
    if (c.denied) return denied(c.address.address, payload.length);
    sendTo(c.address, dest.port, payload);
  }

  /**
   * A resolved name: every answer of the resolver is checked again (it may change). As for
   * CONNECT, the guard filters the addresses: the datagram goes to the first one it allows,
   * and is denied only when it allows none.
   */
  function checkedSend(addresses: readonly ResolvedAddress[], port: number, payload: Buffer, lift?: AddressSet): void {
    const egress = deps.egress;
    const allowed = egress ? addresses.find((a) => !egress.denies(a.address, lift)) : addresses[0];
    if (allowed === undefined) return denied(addresses[0]!.address, payload.length);
    sendTo(asSent(allowed), port, payload);
  }

  function denied(address: string, bytes: number): void {
    deps.egress?.denied('udp');
    deps.log?.debug({ to: address, reason: 'egress denied' }, 'UDP datagram dropped');
    drop('denied', 'up', bytes);
  }

  return {
    send,
    onMessage: events.onMessage,
    onDrop: events.onDrop,
    get local(): Destination | undefined {
      for (const { socket } of sockets.values()) {
        try {
          const a = socket.address();
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
      for (const fs of sockets.values()) {
        fs.sender.close();
        fs.socket.close();
      }
      sockets.clear();
      peers.clear();
      last = undefined;
    },
  };
}

/**
 * The address a datagram goes to, as its answers come from. An IPv4-mapped address
 * (`::ffff:a.b.c.d`) is the IPv4 address it is, sent from the IPv4 socket: Linux leaves an
 * IPv6 socket once connected to a mapped address deaf to IPv6 answers after it disconnects.
 * The unspecified address is the loopback address the kernel sends it to: answers come from
 * there, and a shared socket lets through only the sources it sent to.
 */
function asSent(addr: ResolvedAddress): ResolvedAddress {
  if (addr.family === 4) return addr.address === '0.0.0.0' ? LOOPBACK_V4 : addr;
  const text = unmapped(peerText(addr.address));
  if (text === '::') return LOOPBACK_V6;
  if (text === '0.0.0.0') return LOOPBACK_V4;
  return text.includes(':') ? addr : { address: text, family: 4 };
}

const LOOPBACK_V4: ResolvedAddress = { address: '127.0.0.1', family: 4 };
const LOOPBACK_V6: ResolvedAddress = { address: '::1', family: 6 };

function isAsked(fs: FamilySocket, address: string, port: number): boolean {
  return fs.asked !== undefined && fs.asked.port === port && fs.asked.address === address;
}

function peerKey(address: string, port: number): string {
  return `${address}#${port}`;
}

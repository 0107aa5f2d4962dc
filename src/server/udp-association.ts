// One UDP association (RFC 1928 §7) after its reply: the relay socket facing the client,
// the source check, header decoding, and the accounting. Where datagrams go is UdpRoutes.

import type { RemoteInfo, Socket as DgramSocket } from 'node:dgram';
import { unmapped } from '../protocol/address.js';
import { ByteBudget, HELD_DATAGRAM_BYTES } from '../outbound/byte-budget.js';
import { decodeUdpDatagram, encodeUdpHeader, hasUdpHeader } from '../protocol/messages.js';
import type { Destination } from '../outbound/types.js';
import { DatagramSender } from '../outbound/udp-send.js';
import type { CommandContext } from './context.js';
import { UdpRoutes, type UdpTarget } from './udp-routes.js';

export interface UdpStats {
  /**
   * Client datagrams handed to a socket (the destination's, or an upstream's relay). One the
   * kernel then fails to send counts here and under `send_error`; one dropped before
   * (denied, unresolved, queue_full) only under its reason.
   */
  sent: number;
  /** Answers relayed back to the client. */
  received: number;
  /** Datagrams not relayed, by reason, either way. */
  dropped: Record<string, number>;
}

export interface AssociationOptions {
  /** Only this IP may use the relay socket. */
  clientHost: string;
  /** RFC 1928 §7 DST.PORT: the client's UDP port, or 0 to take the first datagram's. */
  clientPort: number;
  /** ms without a datagram either way after which the association ends; 0 = never. */
  idleTimeout: number;
  /** Bytes of datagrams held at once (waiting for a route, a name or a socket), drawn from the gateway's budget too. */
  maxQueuedBytes: number;
  maxDestinations: number;
}

export type AssociationEnd = 'closed' | 'idle' | 'error';


export class UdpAssociation {
  readonly stats: UdpStats = { sent: 0, received: 0, dropped: {} };
  readonly #ctx: CommandContext;
  readonly #relay: DgramSocket;
  readonly #opts: AssociationOptions;
  readonly #routes: UdpRoutes;
  readonly #budget: ByteBudget;
  readonly #toClientSender: DatagramSender;
  readonly #relayedUp;
  readonly #relayedDown;
  /** Relayed datagrams not yet added to the metric: it is read far less often than they come. */
  #unreportedUp = 0;
  #unreportedDown = 0;
  readonly #report = (): void => this.#reportRelayed();
  /** The last client header decoded, and what it named: a run of datagrams to one destination is decoded once. */
  #lastUp: { header: Buffer; dest: Destination } | undefined;
  /** The header last put in front of an answer, and the source it names. */
  #lastDown: { from: Destination; header: Buffer } | undefined;
  /** The largest UDP payload the relay socket can send: IPv4 65535 - 20 - 8, IPv6 65535 - 8. */
  readonly #maxDatagram: number;
  #clientPort: number;
  #lastActivity = performance.now();
  #finish: ((why: AssociationEnd) => void) | undefined;

  constructor(ctx: CommandContext, relay: DgramSocket, opts: AssociationOptions) {
    this.#ctx = ctx;
    this.#relay = relay;
    this.#opts = opts;
    this.#clientPort = opts.clientPort;
    this.#maxDatagram = relay.address().family === 'IPv6' ? 65_527 : 65_507;
    // Label lookups hash their labels every call: the two hot ones are resolved once.
    this.#relayedUp = ctx.metrics.udpDatagrams.labels({ direction: 'up', result: 'relayed' });
    this.#relayedDown = ctx.metrics.udpDatagrams.labels({ direction: 'down', result: 'relayed' });
    this.#budget = new ByteBudget(opts.maxQueuedBytes, ctx.udpBudget);
    this.#toClientSender = new DatagramSender(relay, this.#budget, () => this.#drop('send_error', 'down'));
    this.#routes = new UdpRoutes(ctx, {
      budget: this.#budget,
      maxDestinations: opts.maxDestinations,
      retryAfterMs: 5_000,
      flowIdleMs: opts.idleTimeout,
      onAnswer: (from, payload) => this.#toClient(from, payload),
      onDrop: (reason, direction, bytes) => {
        // A datagram the channel took and then never sent: counted as sent and charged to the
        // user's bucket when taken, both taken back.
        if (bytes !== undefined && direction === 'up') {
          this.#ctx.limits.throttle?.refund(bytes);
          this.#unsend(bytes);
        }
        this.#drop(reason, direction);
      },
    });
  }

  /** Relays until the control connection closes, the relay socket fails, or it goes idle. */
  run(): Promise<AssociationEnd> {
    const { client, signal } = this.#ctx;
    return new Promise((resolve) => {
      let idleTimer: NodeJS.Timeout | undefined;
      const onMessage = (msg: Buffer, rinfo: RemoteInfo): void => this.#fromClient(msg, rinfo);
      const onError = (err: Error): void => {
        this.#ctx.log.debug({ err }, 'UDP relay socket error');
        finish('error');
      };
      const onControlEnd = (): void => finish('closed');
      const discard = (): void => {};
      const finish = (why: AssociationEnd): void => {
        if (!this.#finish) return;
        this.#finish = undefined;
        clearTimeout(idleTimer);
        this.#relay.off('message', onMessage);
        client.off('data', discard);
        client.off('end', onControlEnd);
        client.off('close', onControlEnd);
        signal.removeEventListener('abort', onControlEnd);
        this.#routes.close();
        this.#budget.close();
        this.#ctx.metrics.offCollect(this.#report);
        this.#reportRelayed();
        resolve(why);
      };
      this.#finish = finish;
      this.#ctx.metrics.onCollect(this.#report);
      this.#relay.on('message', onMessage);
      this.#relay.on('error', onError);
      // RFC 1928 §7: the association lives as long as its TCP connection; nothing else comes on it.
      client.on('data', discard);
      client.once('end', onControlEnd);
      client.once('close', onControlEnd);
      signal.addEventListener('abort', onControlEnd, { once: true });
      client.resume();
      if (signal.aborted || client.destroyed || client.readableEnded) return finish('closed');
      const idle = this.#opts.idleTimeout;
      if (idle > 0) {
        // Re-armed lazily: a datagram only stamps the time, the timer checks it when due.
        const check = (): void => {
          const left = idle - (performance.now() - this.#lastActivity);
          if (left <= 0) finish('idle');
          else idleTimer = setTimeout(check, left + 1);
        };
        idleTimer = setTimeout(check, idle);
      }
    });
  }

  #fromClient(msg: Buffer, rinfo: RemoteInfo): void {
    // Relayed only for the client that asked (RFC 1928 §7): its IP, and its port once known.
    if (unmapped(rinfo.address) !== this.#opts.clientHost) return this.#drop('source', 'up');
    if (this.#clientPort !== 0 && rinfo.port !== this.#clientPort) return this.#drop('source', 'up');
    const last = this.#lastUp;
    if (last !== undefined && hasUdpHeader(msg, last.header)) return this.#toDest(msg, rinfo.port, last.dest, msg.subarray(last.header.length));
    let datagram;
    try {
      datagram = decodeUdpDatagram(msg);
    } catch {
      return this.#drop('malformed', 'up');
    }
    // RFC 1928 §7: fragmentation is optional; an implementation without it drops FRAG != 0.
    if (datagram.frag !== 0) return this.#drop('frag', 'up');
    const { dest, payload } = datagram;
    // Port 0 names no destination: no socket can send there.
    if (dest.port === 0) return this.#drop('bad_port', 'up');
    // A copy: the header alone, not the datagram it came in.
    this.#lastUp = { header: Buffer.from(msg.subarray(0, msg.length - payload.length)), dest };
    this.#toDest(msg, rinfo.port, dest, payload);
  }

  /** A client datagram that passed every check, for `dest` (the same object for one header). */
  #toDest(msg: Buffer, fromPort: number, dest: Destination, payload: Buffer): void {
    if (this.#clientPort === 0) this.#clientPort = fromPort;
    this.#lastActivity = performance.now();
    const target = this.#routes.target(dest);
    if (!(target instanceof Promise)) return this.#forward(target, dest, payload);
    // Waiting for its route holds the datagram: within the budget, or dropped.
    const held = msg.length + HELD_DATAGRAM_BYTES;
    if (!this.#budget.take(held)) return this.#drop('queue_full', 'up');
    void target.then((t) => {
      this.#budget.give(held);
      if (this.#finish) this.#forward(t, dest, payload);
    });
  }

  #forward(target: UdpTarget, dest: Destination, payload: Buffer): void {
    if (target.kind === 'drop') return this.#drop(target.reason, 'up');
    if (!this.#charge(payload.length)) return this.#drop('bandwidth', 'up');
    // Counted before the channel has it: a channel that cannot send it (at once, or after a
    // lookup) takes the count back through its drop (#unsend), so only what left is counted.
    target.usedAt = this.#lastActivity; // a flow under way keeps its route at a reload (UdpRoutes)
    this.stats.sent++;
    this.#ctx.record.up += payload.length;
    this.#unreportedUp++;
    target.channel.send(dest, payload, target.egressLift, target.resolved);
  }

  /**
   * The user's `bandwidth` bucket, shared with their TCP connections (PRODUCT.md "Limits").
   * A datagram has no backpressure to slow it: one past what the bucket may owe is dropped
   * (TokenBucket.tryTake). One its channel drops after this (denied, unresolved, queue full),
   * or an answer the client's send queue has no room for, never left, and is refunded.
   */
  #charge(bytes: number): boolean {
    const bucket = this.#ctx.limits.throttle;
    return bucket === undefined || bucket.tryTake(bytes);
  }

  #unsend(bytes: number): void {
    if (!this.#finish) return; // the line is written
    this.stats.sent--;
    this.#ctx.record.up -= bytes;
    // May go below 0 when the datagram was already reported: the next ones make up for it.
    this.#unreportedUp--;
  }

  #toClient(from: Destination, payload: Buffer): void {
    if (!this.#finish) return;
    // RFC 1928 §7: the answer carries the header naming where it came from. A channel hands
    // the same `from` for one source, so its header is encoded once.
    let last = this.#lastDown;
    if (last === undefined || (last.from !== from && (last.from.host !== from.host || last.from.port !== from.port))) {
      try {
        last = { from, header: encodeUdpHeader(from) };
      } catch {
        return this.#drop('malformed', 'down'); // a source no header can name: never a throw in a 'message' handler
      }
      this.#lastDown = last;
    }
    // An answer that filled a whole datagram has no room left for the header.
    if (last.header.length + payload.length > this.#maxDatagram) return this.#drop('too_large', 'down');
    this.#lastActivity = performance.now();
    if (!this.#charge(payload.length)) return this.#drop('bandwidth', 'down');
    if (!this.#toClientSender.send(last.header, payload, this.#clientPort, this.#opts.clientHost)) {
      // Charged and never sent: given back, as a client datagram its channel drops is (onDrop).
      this.#ctx.limits.throttle?.refund(payload.length);
      return this.#drop('queue_full', 'down');
    }
    this.stats.received++;
    this.#ctx.record.down += payload.length;
    this.#unreportedDown++;
  }

  #reportRelayed(): void {
    // Below 0 (taken back after it was reported) is kept for the next report: a counter only grows.
    if (this.#unreportedUp > 0) {
      this.#relayedUp.inc(this.#unreportedUp);
      this.#unreportedUp = 0;
    }
    if (this.#unreportedDown > 0) this.#relayedDown.inc(this.#unreportedDown);
    this.#unreportedDown = 0;
  }

  #drop(reason: string, direction: 'up' | 'down'): void {
    // Once the association has ended its line is written: a datagram a channel still held (a
    // name being looked up) and drops later is counted nowhere, so /metrics agrees with the log.
    if (!this.#finish) return;
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1;
    this.#ctx.metrics.udpDatagrams.inc({ direction, result: reason });
  }
}

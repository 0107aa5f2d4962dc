// One accepted client connection, whatever its protocol: the first byte picks the front, the
// handshake deadline runs from accept to a complete request, the registry shows it to the
// admin API (which may kill it), and at the end the access-log line is written, unless the
// front wrote one per request (HTTP).

import { getEventListeners } from 'node:events';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Protocol } from '../config/types.js';
import type { Cancellation } from '../dns/types.js';
import { GatewayError, Rep } from '../errors.js';
import type { Metrics } from '../observe/metrics.js';
import type { ByteBudget } from '../outbound/byte-budget.js';
import { unmapped } from '../protocol/address.js';
import type { Address } from '../protocol/types.js';
import { closeClient, closed, letGoOnClose } from './close.js';
import { formatAddress, type AccessRecord, type Snapshot } from './context.js';
import type { ConnectionLimits, Limits } from './limits.js';
import { logAccess } from './pipeline.js';
import { readProxyHeader, type ProxyHeaderPolicy } from './proxy-header.js';
import { ChunkReader } from './reader.js';
import { consumed } from './relay.js';
import type { ConnectionInfo } from '../observe/open-connections.js';
import type { ConnectionRegistry, LiveConnection } from './registry.js';

/**
 * Keepalive probes on an outbound socket start after this much silence, so a destination
 * that vanished behind a NAT is found. Switched on by the gateway's sweep (keepRemoteAlive).
 */
export const OUTBOUND_KEEPALIVE_MS = 60_000;

/** How far past the handshake deadline a client's timer may run rather than be replaced. */
const REARM_SLACK_MS = 5;

// Abort reasons made once: abort() without one builds a DOMException per connection.
const CLIENT_GONE = new GatewayError('GW_ERR_CLIENT_GONE', 'client closed the connection', Rep.GENERAL_FAILURE);
const GATEWAY_STOPPED = new GatewayError('GW_ERR_STOPPED', 'gateway stopped', Rep.GENERAL_FAILURE);

/** A front: runs the client from its first chunk to the end of its last request. */
export type FrontRunner = (conn: ClientConnection, reader: ChunkReader, first: Buffer) => Promise<void>;

export interface ClientDeps {
  snapshot: () => Snapshot;
  metrics: Metrics;
  log: Logger;
  /** Open connections: the gateway's stop aborts each one through it. */
  registry: ConnectionRegistry;
  /** The gateway's UDP byte budget, shared by every association. */
  udpBudget: ByteBudget;
  /** Connection counts and bandwidth buckets, shared by every connection. */
  limits: Limits;
  fronts: Readonly<Record<Protocol, FrontRunner>>;
}

/** SOCKS5 and SOCKS4 by their version byte; HTTP by a method's first letter. Nothing else is looked at. */
export function sniff(first: number): Protocol | undefined {
  if (first === 0x05) return 'socks5';
  if (first === 0x04) return 'socks4';
  if ((first >= 0x41 && first <= 0x5a) || (first >= 0x61 && first <= 0x7a)) return 'http';
  return undefined;
}

export class ClientConnection implements LiveConnection, Cancellation {
  readonly id: number;
  readonly socket: Socket;
  /**
   * The config the connection began on: its deadlines, and every request of a SOCKS
   * connection. An HTTP connection runs each request on the one live when its head arrives.
   */
  readonly snapshot: Snapshot;
  /** The config live now. */
  readonly current: () => Snapshot;
  readonly metrics: Metrics;
  /** The peer, or the client a trusted PROXY protocol header names (set before any front runs). */
  source: Address;
  readonly udpBudget: ByteBudget;
  /** The request in progress (HTTP: the latest); what the registry shows. */
  record: AccessRecord;
  /** Access-log lines written by the front (one per HTTP request). */
  logged = 0;
  /**
   * What the front answers a client its handshake deadline cuts off (HTTP: a 408, with that
   * status in the access log); without one the socket is destroyed.
   */
  deadlineAnswer: { status: number; bytes: string } | undefined;
  /**
   * The front has given its last answer on this connection, which closes after it (HTTP: a
   * 400 or a 431, a response the origin sent bytes after): requests the client pipelined
   * behind it are not served.
   */
  closing = false;
  readonly #started = Date.now();
  readonly #t0 = performance.now();
  readonly #deadline: number;
  /** Made on first use of `signal` (an AbortSignal costs microseconds and half a KiB). */
  #controller: AbortController | undefined;
  /** Why the connection's work is over (client gone, gateway stopped), once it is. */
  #aborted: GatewayError | undefined;
  /** Listeners of the connection as a Cancellation (a dial in progress): called once, at its end. */
  #onAbort: Array<() => void> | undefined;
  #remote: Socket | undefined;
  /** #remote's totals when attached (an upstream's handshake is in them): live counts start there. */
  #remoteUpFrom = 0;
  #remoteDownFrom = 0;
  /** Keepalive is on for #remote. */
  #remoteKept = false;
  #inHandshake = true;
  /** What the client has yet to send a first byte of, while it has sent none (letGoIfSilent). */
  #awaiting: 'proxy header' | 'request' | undefined;
  /** The deadline as a timer of its own, for a front whose reads rearm() never sees (holdDeadline). */
  #deadlineTimer: NodeJS.Timeout | undefined;
  readonly #shared: Limits;
  #limits: ConnectionLimits | undefined;
  readonly #baseLog: Logger;
  #log: Logger | undefined;
  /** The record whose line logRequest wrote last: its bytes are in the counters. */
  #counted: AccessRecord | undefined;
  readonly #onClose: () => void;
  readonly #onHandshakeTimeout: () => void;

  constructor(id: number, socket: Socket, deps: Pick<ClientDeps, 'snapshot' | 'metrics' | 'log' | 'udpBudget' | 'limits'>) {
    this.id = id;
    this.socket = socket;
    this.current = deps.snapshot;
    this.snapshot = deps.snapshot();
    this.metrics = deps.metrics;
    this.#baseLog = deps.log;
    this.source = sourceOf(socket.remoteAddress ?? '', socket.remotePort ?? 0);
    this.udpBudget = deps.udpBudget;
    this.record = this.newRecord();
    this.#deadline = this.#t0 + this.snapshot.config.limits.handshake_timeout;
    this.#shared = deps.limits;
    this.#shared.handshakeBegan(); // until the request is complete or the connection ends
    // Listeners assigned here rather than as arrow-function fields: a field initializer gets
    // its name set by Object.defineProperty when run through tsx (esbuild keepNames), which
    // turns each such function into a dictionary-mode object of about 300 bytes, held for the
    // life of every connection.
    this.#onClose = () => this.#abort(CLIENT_GONE);
    this.#onHandshakeTimeout = () => {
      this.record.error = 'handshake timeout';
      const answer = this.deadlineAnswer;
      if (answer === undefined || !this.socket.writable) return void this.socket.destroy();
      this.record.status = answer.status;
      this.record.rep ??= Rep.GENERAL_FAILURE; // beside the status, as every answered refusal has it
      closeClient(this.socket, answer.bytes);
    };
  }

  /** Lines about this connection carry its `sid`; the child logger is made when first used. */
  get log(): Logger {
    return (this.#log ??= this.#baseLog.child({ sid: this.id }));
  }

  /** The limit slots this connection holds once admitted; given back when it closes. */
  get limits(): ConnectionLimits {
    return (this.#limits ??= this.#shared.connection());
  }

  get started(): number {
    return this.#t0;
  }

  /** A fresh record for the next request on this connection. */
  newRecord(protocol?: Protocol): AccessRecord {
    // Every field declared up front, in the order the log line has them: one shape, its
    // fields inside the object, rather than a property store grown field by field for the
    // life of the connection. Undefined fields are left out of the line.
    const record: AccessRecord = {
      sid: this.id,
      // A connection reset before it was accepted has no peer address: no client to name.
      client: this.source.host === '' ? undefined : formatAddress(this.source),
      up: 0,
      down: 0,
      protocol,
      user: undefined,
      session: undefined,
      userid: undefined,
      dest: undefined,
      cmd: undefined,
      rule: undefined,
      outbound: undefined,
      member: undefined,
      rep: undefined,
      status: undefined,
      udp: undefined,
      error: undefined,
      ms: undefined,
    };
    this.record = record;
    this.#remote = undefined;
    return record;
  }

  /**
   * The socket on the far side of the request in progress, ended too by kill(). The dial is
   * over: nothing waits on the signal any more (the dial's listeners are gone), so it is let
   * go rather than held, and aborted, for the life of the relay. Kept when anything still
   * listens (BIND, UDP); a later request on the connection gets a fresh one. `again`: a socket
   * attached before, kept for this request (an HTTP origin connection), whose hooks are set.
   */
  attach(remote: Socket, again = false): void {
    this.#remote = remote;
    // Bytes read with the upstream's reply but not consumed yet are the destination's.
    this.#remoteUpFrom = remote.bytesWritten;
    this.#remoteDownFrom = consumed(remote);
    this.#remoteKept = false;
    if (!again) remote.on('close', letGoOnClose);
    if (this.#controller && getEventListeners(this.#controller.signal, 'abort').length === 0) this.#controller = undefined;
  }

  /**
   * The handshake deadline rides on the socket's own timer: armed at accept, re-armed to
   * what is left after every chunk (activity alone must not extend it), ended by handshakeDone().
   * The timer restarts at each chunk with its full length; it is only re-armed (a new timer
   * each time) when that would overshoot the deadline by more than REARM_SLACK_MS, so a
   * client that sends its request at once costs one timer, not one per chunk.
   */
  rearm(): void {
    if (!this.#inHandshake || this.#deadlineTimer) return;
    const left = this.#deadline - performance.now();
    const armed = this.socket.timeout ?? 0;
    if (armed === 0 || armed - left > REARM_SLACK_MS) this.socket.setTimeout(Math.max(1, left));
  }

  /**
   * For a front that hands the socket to a reader of its own (HTTP: node's parser): every read
   * restarts the socket's timer, and rearm() is never called to shorten it, so a head that
   * drips in would outlast the deadline (node's headersTimeout counts from the first byte, not
   * from accept). The rest of the deadline becomes one plain timer instead.
   */
  holdDeadline(): void {
    if (!this.#inHandshake || this.#deadlineTimer) return;
    this.socket.setTimeout(0);
    this.#deadlineTimer = setTimeout(this.#onHandshakeTimeout, Math.max(1, this.#deadline - performance.now()));
    this.#deadlineTimer.unref();
  }

  /** The request is complete: the deadline ends and the handshake time is observed. */
  handshakeDone(): void {
    if (this.#endHandshake()) this.metrics.handshakeSeconds.observe((performance.now() - this.#t0) / 1000);
  }

  #endHandshake(): boolean {
    if (!this.#inHandshake) return false;
    this.#inHandshake = false;
    this.#shared.handshakeEnded();
    clearTimeout(this.#deadlineTimer);
    this.socket.setTimeout(0);
    this.socket.off('timeout', this.#onHandshakeTimeout);
    return true;
  }

  /**
   * Writes the access-log line of one request (HTTP) and counts it, on the config live now:
   * each request runs on the config live at its head, not the one the connection began on
   * (a user a reload added is counted as per_user names them).
   */
  logRequest(record: AccessRecord, startedMs: number): void {
    this.logged++;
    this.#counted = record;
    logAccess(this.metrics, this.#baseLog, record, startedMs, this.current().config);
  }

  info(): ConnectionInfo {
    const r = this.record;
    const info: ConnectionInfo = { id: this.id, client: r.client ?? '', up: r.up, down: r.down, started: this.#started };
    if (r.protocol) info.protocol = r.protocol;
    if (r.user !== undefined) info.user = r.user;
    if (r.cmd) info.command = r.cmd;
    if (r.dest) info.dest = r.dest;
    if (r.rule) info.rule = r.rule;
    if (r.outbound) info.outbound = r.outbound;
    if (r.member) info.member = r.member;
    if (r === this.#counted) info.logged = true;
    // Live counts while relaying: what crossed the outbound socket so far.
    const remote = this.#remote;
    if (remote && r.up === 0 && r.down === 0) {
      info.up = remote.bytesWritten - this.#remoteUpFrom;
      info.down = consumed(remote) - this.#remoteDownFrom;
    }
    return info;
  }

  /**
   * The gateway stops for good (after draining): whatever the connection waits on is aborted.
   * Called per connection from the registry rather than through one shared AbortSignal:
   * EventTarget checks every listener for a duplicate on add, so one signal listened to by
   * every open connection made each accept O(open connections).
   */
  stop(): void {
    // The drain is over and the gateway cuts what is still open: the access-log line says so,
    // rather than reading as a connection that finished on its own.
    this.record.error ??= GATEWAY_STOPPED.message;
    this.#abort(GATEWAY_STOPPED);
  }

  /**
   * The gateway begins to stop: a client that has sent no byte of a request has none in
   * flight, and is closed now rather than held to its handshake deadline. A balancer's whole
   * PROXY header is no request; a part of one is left to finish.
   */
  letGoIfSilent(): void {
    const socket = this.socket;
    // Bytes read but not yet taken (after a PROXY header, unshifted) are a request begun.
    const silent = this.#awaiting === 'request' ? socket.readableLength === 0 : this.#awaiting === 'proxy header' && socket.bytesRead === 0;
    if (!silent) return;
    this.record.error ??= GATEWAY_STOPPED.message;
    socket.destroy();
  }

  /** Aborted when the client goes away or the gateway stops; made when first asked for. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#aborted);
    }
    return this.#controller.signal;
  }

  /** As a Cancellation: what `signal` would say, without making one. */
  get aborted(): boolean {
    return this.#aborted !== undefined;
  }

  get reason(): GatewayError | undefined {
    return this.#aborted;
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.#aborted) return;
    (this.#onAbort ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const at = this.#onAbort?.indexOf(listener) ?? -1;
    if (at >= 0) this.#onAbort!.splice(at, 1);
  }

  #abort(reason: GatewayError): void {
    if (this.#aborted) return;
    this.#aborted = reason;
    this.#controller?.abort(reason);
    const listeners = this.#onAbort;
    this.#onAbort = undefined;
    if (listeners) for (const l of listeners) l();
  }

  /**
   * Keepalive is four setsockopt calls; most connections (a crawler's) close long before a
   * probe could matter, so the gateway's sweep switches it on only for those still open.
   */
  keepRemoteAlive(): void {
    const remote = this.#remote;
    if (!remote || this.#remoteKept || remote.destroyed) return;
    this.#remoteKept = true;
    remote.setKeepAlive(true, OUTBOUND_KEEPALIVE_MS);
  }

  kill(reason: string): void {
    this.record.error = reason;
    this.socket.destroy();
    this.#remote?.destroy();
  }

  /** From accept to close. Never throws. */
  async run(protocols: readonly Protocol[], fronts: ClientDeps['fronts'], proxyHeader?: ProxyHeaderPolicy, registry?: ConnectionRegistry): Promise<void> {
    const { socket } = this;
    socket.on('close', this.#onClose); // emitted once
    socket.on('close', letGoOnClose);
    socket.on('error', ignore); // reported through 'close'; a reset client is not our failure
    socket.setNoDelay(true);
    // handshake_timeout covers accept → complete request, for every protocol.
    socket.on('timeout', this.#onHandshakeTimeout);
    this.rearm();
    let reader: ChunkReader | undefined;
    try {
      // PROXY protocol comes before the protocol's first byte, inside the same deadline.
      this.#awaiting = proxyHeader ? 'proxy header' : 'request';
      if (proxyHeader && !(await this.#readProxyHeader(proxyHeader))) return;
      this.#awaiting = 'request';
      reader = new ChunkReader(socket);
      let first = await reader.next();
      this.#awaiting = undefined;
      this.rearm();
      if (first === null || first.length === 0) {
        this.record.error ??= 'closed before greeting';
        return;
      }
      const protocol = sniff(first[0]!);
      if (!protocol || !protocols.includes(protocol)) {
        this.record.error = protocol ? `${protocol} not served on this listener` : `unknown protocol (first byte ${first[0]})`;
        return;
      }
      this.record.protocol = protocol;
      const running = fronts[protocol](this, reader, first);
      // This frame waits for the connection's end: the first read (with any payload behind
      // the request, up to 64 KiB) is the front's to let go once relayed, not held here.
      first = null;
      await running;
    } catch (err) {
      this.record.error ??= err instanceof Error ? err.message : String(err);
      this.log.error({ err }, 'front failed');
      socket.destroy();
    } finally {
      this.#awaiting = undefined;
      reader?.detach();
      this.#endHandshake();
      if (!socket.destroyed) closeClient(socket);
      await closed(socket);
      this.#limits?.release(); // before the access-log line: a client that saw us close may come back at once
      registry?.delete(this.id);
      if (this.logged === 0) logAccess(this.metrics, this.#baseLog, this.record, this.#t0, this.snapshot.config);
    }
  }

  /**
   * The listener's PROXY protocol step: a trusted balancer's header makes its client the
   * source for rules, limits and logs. False when the connection must close (the reason is
   * the access log's error): no header from a trusted peer, one from anyone else, the deadline.
   */
  async #readProxyHeader(policy: ProxyHeaderPolicy): Promise<boolean> {
    try {
      const claimed = await readProxyHeader(this.socket, policy, Math.max(1, this.#deadline - performance.now()));
      if (claimed) {
        this.source = sourceOf(claimed.host, claimed.port);
        this.record.client = formatAddress(this.source);
      }
      this.rearm();
      return true;
    } catch (err) {
      this.record.error ??= err instanceof Error ? err.message : String(err);
      return false;
    }
  }
}

function ignore(): void {}

/**
 * The client as rules, limits, sessions and the log see it. An IPv4 client on a dual-stack
 * listener (or in a PROXY header's TCP6) arrives as ::ffff:a.b.c.d: it is the IPv4 client it
 * is, whichever listener it came through, and holds one per-source share.
 */
function sourceOf(host: string, port: number): Address {
  return { host: unmapped(host), port };
}

/**
 * Runs one accepted client, registered for the admin API while it is open. Not async: the
 * connection's own run() is the one frame that waits for the end (it never rejects).
 */
export function runClient(socket: Socket, protocols: readonly Protocol[], deps: ClientDeps, proxyHeader?: ProxyHeaderPolicy): Promise<void> {
  let conn: ClientConnection;
  try {
    conn = new ClientConnection(deps.registry.nextId(), socket, deps);
  } catch (err) {
    return Promise.reject(err);
  }
  deps.registry.add(conn);
  return conn.run(protocols, deps.fronts, proxyHeader, deps.registry);
}

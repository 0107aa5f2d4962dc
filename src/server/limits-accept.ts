// Refusing a client at accept, when the gateway is full (`max_connections`) or has too many
// handshakes in progress (`max_handshakes`), per PRODUCT.md "Limits": SOCKS clients are closed
// before their greeting, HTTP clients get 503. Only the first byte tells them apart, so that
// byte is read, within a short bound, and nothing else is (behind a load balancer's PROXY
// header, the first byte after it). This runs under overload: no session, no per-client
// closure or timer beyond the header's (the socket's own timeout bounds the rest), and only so
// many refused clients at once wait for their first byte; beyond that they are closed at once.

import type { Socket } from 'node:net';
import { unmapped } from '../protocol/address.js';
import { sniff } from './client.js';
import { readProxyHeader, type ProxyHeaderPolicy } from './proxy-header.js';

/** How long a refused client has to send its first byte, and then to take our answer. */
export const FIRST_BYTE_MS = 1_000;
/** Refused clients waiting for their first byte at once; past this, the next are closed unread. */
export const MAX_WAITING = 256;

const BODY = 'gateway full\n';
const GATEWAY_FULL = Buffer.from(
  'HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${BODY.length}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n${BODY}`,
  'latin1',
);

export class AcceptRefusals {
  readonly #firstByteMs: number;
  readonly #maxWaiting: number;
  #waiting = 0;

  constructor(opts: { firstByteMs?: number; maxWaiting?: number } = {}) {
    this.#firstByteMs = opts.firstByteMs ?? FIRST_BYTE_MS;
    this.#maxWaiting = opts.maxWaiting ?? MAX_WAITING;
  }

  /** Refused clients still open (waiting for their first byte, or taking the 503). */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * Ends `socket` (paused, nothing read): closed at once when the listener serves no HTTP or
   * too many refused clients are waiting already; otherwise its first byte decides, read after
   * the PROXY header when the listener takes one. `noted` (the caller counts and logs the
   * refusal) is called once with the client: the header's when one is read (behind a balancer
   * the peer is the balancer, the same for every client), else the peer's own address.
   */
  refuse(socket: Socket, httpServed: boolean, proxyHeader?: ProxyHeaderPolicy, noted: (client: string) => void = ignore): void {
    const peer = unmapped(socket.remoteAddress ?? '');
    if (!httpServed || this.#waiting >= this.#maxWaiting) {
      noted(peer);
      socket.destroy();
      return;
    }
    this.#waiting++;
    socket.on('error', ignore);
    socket.once('close', this.#onClose);
    if (!proxyHeader) {
      noted(peer);
      return this.#awaitFirstByte(socket);
    }
    // A header that is missing, malformed or from an untrusted peer closes, as when served.
    readProxyHeader(socket, proxyHeader, this.#firstByteMs).then(
      (claimed) => {
        noted(claimed ? unmapped(claimed.host) : peer);
        this.#awaitFirstByte(socket);
      },
      () => {
        noted(peer);
        socket.destroy();
      },
    );
  }

  #awaitFirstByte(socket: Socket): void {
    socket.once('data', onFirstChunk);
    socket.once('end', onEnd);
    socket.on('timeout', onTimeout);
    socket.setTimeout(this.#firstByteMs);
    socket.resume();
  }

  readonly #onClose = (): void => {
    this.#waiting--;
  };
}

function ignore(): void {}

/**
 * When each refused HTTP client answered must be gone: the socket's timeout alone counts
 * silence, and every byte the client sends restarts it.
 */
const answeredDeadlines = new WeakMap<Socket, number>();

/** SOCKS (or anything but a letter) is closed before its greeting; HTTP is told 503. */
function onFirstChunk(this: Socket, chunk: Buffer): void {
  if (sniff(chunk[0]!) !== 'http') {
    this.destroy();
    return;
  }
  // The rest of the request is read and dropped while the answer goes out; the socket's
  // timeout (still armed) cuts a client that goes silent without closing, and the deadline
  // one that keeps sending (a byte at a time would restart that timeout for ever).
  answeredDeadlines.set(this, performance.now() + (this.timeout ?? FIRST_BYTE_MS));
  this.on('data', onLaterChunk);
  this.end(GATEWAY_FULL);
}

function onLaterChunk(this: Socket): void {
  if (performance.now() > (answeredDeadlines.get(this) ?? 0)) this.destroy();
}

/** The client closed its side: nothing to answer if it sent nothing; else node closes once our answer is out. */
function onEnd(this: Socket): void {
  if (!this.writableEnded) this.destroy();
}

function onTimeout(this: Socket): void {
  this.destroy();
}

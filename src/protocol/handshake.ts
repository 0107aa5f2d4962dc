// The server side of the SOCKS5 handshake as a sans-I/O state machine (h11's contract): the
// session feeds it bytes, gets events, and sends the bytes its answers return.
//
//   greeting → choosing → [auth → authenticating →] request → requested → done
//
// `choosing`, `authenticating` and `requested` wait for the session's answer (selectMethod,
// authResult, reply), like h11's PAUSED: bytes keep being buffered but nothing is decoded, so
// a client that pipelines greeting+auth+request never gets ahead of the session. After
// answering, the session calls `receive(Buffer.alloc(0))` to drain what is already buffered.

import { ProtocolError, Rep } from '../errors.js';
import { EMPTY, MAX_HANDSHAKE_BYTES, Method } from './constants.js';
import {
  decodeAuthRequest,
  decodeGreeting,
  decodeRequest,
  encodeAuthStatus,
  encodeMethod,
  encodeReply,
  NEED_DATA,
} from './messages.js';
import type { Address, HandshakeEvent } from './types.js';

export type HandshakeState = 'greeting' | 'choosing' | 'auth' | 'authenticating' | 'request' | 'requested' | 'done';

/**
 * How much a paused handshake buffers before giving up. A legitimate client may pipeline payload
 * after its request, but the session is expected to stop reading while it decides.
 */
const MAX_BUFFERED_WHILE_PAUSED = MAX_HANDSHAKE_BYTES + 64 * 1024;


export class ServerHandshake {
  #state: HandshakeState = 'greeting';
  #buf: Buffer = EMPTY;
  /** Handshake bytes already decoded (greeting, auth), counted against MAX_HANDSHAKE_BYTES. */
  #consumed = 0;
  /** What receive() threw: the state stays where it failed until failure() is called. */
  #error: ProtocolError | undefined;

  get state(): HandshakeState {
    return this.#state;
  }

  /**
   * Buffers `chunk` and returns every complete event; [] means "need more bytes" (or "paused").
   * Call with an empty Buffer after selectMethod/authResult to decode bytes already buffered.
   * After 'requested' or 'done' bytes are only buffered: remainder() hands them back.
   * Throws ProtocolError for bad input, leaving `state` at the phase that failed (and throwing
   * the same error again if fed more); pass it to failure() for the bytes to send.
   */
  receive(chunk: Buffer): HandshakeEvent[] {
    if (chunk.length > 0) this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const events: HandshakeEvent[] = [];
    if (this.#state === 'done' || this.#state === 'requested') return events;
    if (this.#error) throw this.#error;
    try {
      for (let e = this.#next(); e !== NEED_DATA; e = this.#next()) events.push(e);
      this.#checkBounds();
    } catch (err) {
      if (err instanceof ProtocolError) this.#error = err;
      throw err;
    }
    return events;
  }

  /** RFC 1928 §3: answer the greeting. NO_ACCEPTABLE ends the handshake (the client closes). */
  selectMethod(m: number): Buffer {
    this.#expect('choosing', 'selectMethod');
    this.#state = m === Method.NO_ACCEPTABLE ? 'done' : m === Method.USERPASS ? 'auth' : 'request';
    return encodeMethod(m);
  }

  /** RFC 1929 §2: a failed check ends the handshake; the session closes after sending it. */
  authResult(ok: boolean): Buffer {
    this.#expect('authenticating', 'authResult');
    this.#state = ok ? 'request' : 'done';
    return encodeAuthStatus(ok);
  }

  /** RFC 1928 §6: the reply to the request; `bound` absent → 0.0.0.0:0. */
  reply(rep: Rep, bound?: Address): Buffer {
    this.#state = 'done';
    return encodeReply(rep, bound);
  }

  /**
   * Bytes to send for a ProtocolError thrown by receive(): a reply carrying `err.rep` in the
   * request phase, an auth failure status (01 01) in the auth phase, nothing in the greeting
   * phase (there is no way to say "bad version" to a non-SOCKS5 client). Sets state 'done'.
   */
  failure(err: ProtocolError): Buffer | undefined {
    const phase = this.#state;
    this.#state = 'done';
    switch (phase) {
      case 'request':
      case 'requested':
        return encodeReply(err.rep);
      case 'auth':
      case 'authenticating':
        return encodeAuthStatus(false);
      default:
        return undefined;
    }
  }

  /** Bytes pipelined after the request (or the last decoded message); the session unshifts them. */
  remainder(): Buffer {
    const rest = this.#buf;
    this.#buf = EMPTY;
    return rest;
  }

  #next(): HandshakeEvent | typeof NEED_DATA {
    switch (this.#state) {
      case 'greeting': {
        const d = decodeGreeting(this.#buf);
        if (d === NEED_DATA) return NEED_DATA;
        this.#advance(d.size, 'choosing');
        return { type: 'greeting', methods: d.value.methods };
      }
      case 'auth': {
        const d = decodeAuthRequest(this.#buf);
        if (d === NEED_DATA) return NEED_DATA;
        this.#advance(d.size, 'authenticating');
        return { type: 'auth', username: d.value.username, password: d.value.password };
      }
      case 'request': {
        const d = decodeRequest(this.#buf);
        if (d === NEED_DATA) return NEED_DATA;
        this.#advance(d.size, 'requested');
        return { type: 'request', cmd: d.value.cmd, dest: d.value.dest };
      }
      default:
        return NEED_DATA; // paused or finished
    }
  }

  #advance(size: number, next: HandshakeState): void {
    this.#buf = this.#buf.subarray(size);
    this.#consumed += size;
    this.#state = next;
  }

  /** Everything up to a complete request fits in MAX_HANDSHAKE_BYTES; more is not SOCKS5. */
  #checkBounds(): void {
    const s = this.#state;
    if (s === 'greeting' || s === 'auth' || s === 'request') {
      if (this.#consumed + this.#buf.length > MAX_HANDSHAKE_BYTES) {
        throw new ProtocolError('handshake longer than any valid one', Rep.GENERAL_FAILURE);
      }
    } else if ((s === 'choosing' || s === 'authenticating') && this.#buf.length > MAX_BUFFERED_WHILE_PAUSED) {
      throw new ProtocolError('too many bytes before the handshake was answered', Rep.GENERAL_FAILURE);
    }
  }

  #expect(state: HandshakeState, what: string): void {
    if (this.#state !== state) throw new Error(`${what}() in handshake state '${this.#state}'`);
  }
}

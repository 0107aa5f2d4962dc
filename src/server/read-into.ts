// The adapter for one Node quirk: `onread` (a socket reads into buffers its owner supplies, with
// no allocation and no stream machinery per chunk) is offered only when a socket is constructed
// (`net.connect({ onread })`). The relay needs it on sockets that already exist: the ones a
// server accepted, and the ones an outbound has already talked a handshake over. This sets, on
// a live socket, the same three fields Node's Socket constructor sets for `onread`, and gives
// the handle its first buffer, as the constructor does (lib/net.js, initSocketHandle). Where a
// socket does not look like that (another Node, a TLS socket, no handle), it answers `false`
// and the relay pipes instead.

import type { Socket } from 'node:net';

/** Called with each read: `n` bytes at the start of `buffer`. `false` stops reading (resume() restarts it). */
export type OnRead = (n: number, buffer: Buffer) => boolean;

interface UserBufferHandle {
  useUserBuffer(buffer: Buffer): void;
}

/** The symbols Node keys `onread` by, found once on the first socket that has them. */
interface OnreadKeys {
  buffer: symbol;
  callback: symbol;
  next: symbol;
}

let keys: OnreadKeys | null | undefined;

function keysOf(socket: Socket): OnreadKeys | null {
  if (keys !== undefined) return keys;
  const found = new Map<string, symbol>();
  for (const k of Object.getOwnPropertySymbols(socket)) if (k.description) found.set(k.description, k);
  const buffer = found.get('kBuffer');
  const callback = found.get('kBufferCb');
  const next = found.get('kBufferGen');
  keys = buffer && callback && next ? { buffer, callback, next } : null;
  return keys;
}

function handleOf(socket: Socket): UserBufferHandle | undefined {
  const handle = (socket as unknown as { _handle?: unknown })._handle;
  if (typeof handle !== 'object' || handle === null) return undefined;
  // A plain TCP handle only: a TLS socket's reads pass through the TLS layer first.
  if (handle.constructor.name !== 'TCP') return undefined;
  return typeof (handle as Partial<UserBufferHandle>).useUserBuffer === 'function' ? (handle as UserBufferHandle) : undefined;
}

/**
 * A socket straight on a TCP handle (not TLS): a write it reports done (writableLength back to
 * 0 at once) was taken whole by the kernel, and nothing refers to the written bytes any more.
 */
export function isPlainTcp(socket: Socket): boolean {
  return handleOf(socket) !== undefined;
}

/** True once the socket's stream has seen EOF (its 'end' may still be ahead): no more reads will come. */
export function sawEnd(socket: Socket): boolean {
  return socket.readableEnded || (socket as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
}

/** A closed socket's read hooks let go: nothing reads into our buffers or calls us back any more. */
export function stopReadingInto(socket: Socket): void {
  if (!keys) return; // never set on any socket
  const fields = socket as unknown as Record<symbol, unknown>;
  if (fields[keys.callback] == null) return;
  fields[keys.buffer] = null;
  fields[keys.next] = null;
  fields[keys.callback] = null;
}

/**
 * Switches a paused, live socket to reading into `first`, then into whatever `next` returns after
 * each read (called right after `onRead`). Its stream no longer emits 'data'; 'end', 'close',
 * 'error', pause() and resume() work as before, and bytesRead still counts. The caller drains
 * what the stream already held beforehand. False (and nothing changed) where this Node or this
 * socket does not allow it.
 */
export function readInto(socket: Socket, first: Buffer, onRead: OnRead, next: () => Buffer): boolean {
  const k = keysOf(socket);
  const handle = handleOf(socket);
  if (!k || !handle || socket.connecting || socket.destroyed || sawEnd(socket) || socket.readableLength > 0) return false;
  const fields = socket as unknown as Record<symbol, unknown>;
  // Already reading into buffers of someone else's: leave it be.
  if (fields[k.buffer] != null || fields[k.callback] != null) return false;
  try {
    handle.useUserBuffer(first);
  } catch {
    return false; // a handle this Node will not switch: the stream is untouched, the relay pipes
  }
  fields[k.buffer] = first;
  fields[k.next] = next;
  fields[k.callback] = onRead;
  return true;
}

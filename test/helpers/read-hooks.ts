import type { Socket } from 'node:net';

/** The read hooks Node keys `onread` by (kBuffer, kBufferCb, kBufferGen) that are set on a socket. */
export function readHooks(s: Socket): string[] {
  const fields = s as unknown as Record<symbol, unknown>;
  return Object.getOwnPropertySymbols(s)
    .filter((k) => /^kBuffer/.test(k.description ?? '') && fields[k] != null)
    .map((k) => k.description!);
}

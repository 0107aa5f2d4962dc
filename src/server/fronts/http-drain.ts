// The adapter for one node:http quirk: at a CONNECT head node hands the socket over and takes
// its own 'drain' listener off it (lib/_http_server.js, onParserExecuteCommon), the one that
// tells the response being written that it may write on (socketOnDrain). A response to a
// request pipelined ahead of the CONNECT, larger than the socket's buffer, then waits for a
// 'drain' that never comes, and the tunnel queued behind it never starts. This listener does
// what node's did for that response, until the tunnel takes the socket.

import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** node's flag for "a write returned false" (internal/http kNeedDrain), found once on a response that has it. */
let needDrainKey: symbol | null | undefined;

function keyOf(res: ServerResponse): symbol | null {
  if (needDrainKey !== undefined) return needDrainKey;
  needDrainKey = Object.getOwnPropertySymbols(res).find((k) => k.description === 'kNeedDrain') ?? null;
  return needDrainKey;
}

/** node's pointer to the response that has the socket now (later ones wait their turn); null once all are written. */
function responseOn(socket: Socket): ServerResponse | null | undefined {
  return (socket as unknown as { _httpMessage?: ServerResponse | null })._httpMessage;
}

/**
 * Passes the socket's 'drain' on to the response node is writing on it; returns the function
 * that stops it. Nothing to do for a CONNECT with no response ahead of it (the usual case).
 */
export function passDrainToResponse(socket: Socket): () => void {
  if (!responseOn(socket)) return noop;
  const onDrain = (): void => {
    const res = responseOn(socket);
    if (!res?.writableNeedDrain) return;
    const key = keyOf(res);
    // Cleared as node clears it: else writableNeedDrain would stay true for the rest of the response.
    if (key) (res as unknown as Record<symbol, unknown>)[key] = false;
    res.emit('drain');
  };
  socket.on('drain', onDrain);
  return () => socket.off('drain', onDrain);
}

function noop(): void {}

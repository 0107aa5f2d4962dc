// A dialed connection given up instead of relayed, or once its relay or request is over.
import type { Connection } from './types.js';

/**
 * Closes `conn`'s socket (with `err`, for a reset to pass on) and gives back what its outbound
 * counts for it (a pool member's open connections): both, always together.
 */
export function giveUp(conn: Connection, err?: Error): void {
  conn.socket.destroy(err);
  conn.release?.();
}

// What the admin API reads of the open client connections: one line of facts each, and the
// power to end one. The gateway's connection registry (server/registry.ts) provides it.

import type { Command, Protocol } from '../config/types.js';

/** What the admin API shows of one open connection. Passwords never land here. */
export interface ConnectionInfo {
  id: number;
  client: string; // "ip:port", after PROXY protocol
  protocol?: Protocol;
  user?: string;
  command?: Command;
  dest?: string;
  rule?: string;
  outbound?: string;
  member?: string;
  up: number; // bytes client → destination so far
  down: number;
  /**
   * The request's access-log line is written, so its bytes are in the counters already: an
   * HTTP keep-alive connection between requests shows its last one.
   */
  logged?: boolean;
  started: number; // Date.now() at accept
}

export interface OpenConnections {
  /** The open connections now, byte counts read now. */
  list(): ConnectionInfo[];
  /** Ends connection `id`; false when none is open with that id. */
  kill(id: number, reason: string): boolean;
}

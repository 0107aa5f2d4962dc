import type { Command, Protocol } from '../../config/types.js';
import type { Address } from '../../protocol/types.js';
import type { ClientConnection } from '../client.js';
import type { CommandContext } from '../context.js';
import type { Front, ProxyRequest, SessionParams } from '../request.js';

export interface Decoded {
  protocol: Protocol;
  command: Command;
  dest: Address;
  user?: string;
  sessionKey?: string;
  params?: SessionParams;
}

const NO_PARAMS: SessionParams = Object.freeze({});

/** The ProxyRequest a front decoded, and what the pipeline runs it with. */
export function requestContext(conn: ClientConnection, front: Front, d: Decoded): CommandContext {
  const params = d.params ?? (d.sessionKey !== undefined ? Object.freeze({ session: d.sessionKey }) : NO_PARAMS);
  const sessionKey = d.sessionKey ?? d.user ?? conn.source.host;
  const request: ProxyRequest = { protocol: d.protocol, command: d.command, dest: d.dest, params, sessionKey, source: conn.source, ...(d.user !== undefined ? { user: d.user } : {}) };
  return {
    client: conn.socket,
    front,
    request,
    dest: d.dest,
    user: d.user,
    sessionKey,
    source: conn.source.host,
    snapshot: conn.snapshot,
    metrics: conn.metrics,
    get log() {
      return conn.log; // made only if something logs about this connection
    },
    get signal() {
      return conn.signal; // made only when something waits on it (a dial, BIND, UDP)
    },
    record: conn.record,
    limits: conn.limits,
    attach(remote) {
      conn.attach(remote);
    },
    udpBudget: conn.udpBudget,
  };
}

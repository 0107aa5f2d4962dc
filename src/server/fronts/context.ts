import type { Command, Protocol } from '../../config/types.js';
import type { Address } from '../../protocol/types.js';
import { stickyKey } from '../../protocol/username.js';
import type { ClientConnection } from '../client.js';
import type { AccessRecord, CommandContext } from '../context.js';
import { clipForLog } from '../log-clip.js';
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

/**
 * The ProxyRequest a front decoded, and what the pipeline runs it with. `record` is the
 * request's own access record, named by the front: on an HTTP connection the connection's
 * latest one may belong to a request pipelined behind it.
 */
export function requestContext(conn: ClientConnection, front: Front, record: AccessRecord, d: Decoded, snapshot = conn.snapshot): CommandContext {
  const params = d.params ?? (d.sessionKey !== undefined ? Object.freeze({ session: d.sessionKey }) : NO_PARAMS);
  // The line names the session the client asked for, not the key a request without one is pinned by;
  // cut as a name is (an HTTP Basic name, unlike RFC 1929's, may run to node's 16 KiB header).
  if (d.sessionKey !== undefined) record.session = clipForLog(d.sessionKey);
  const sessionKey = stickyKey(d.user, d.sessionKey, conn.source.host);
  const request: ProxyRequest = { protocol: d.protocol, command: d.command, dest: d.dest, params, sessionKey, source: conn.source, ...(d.user !== undefined ? { user: d.user } : {}) };
  return new RequestContext(conn, front, record, request, d.user, snapshot);
}

/**
 * A class rather than an object literal: `log` and `signal` are read from the connection
 * when asked for (its child logger and its abort signal are made on first use), and getters
 * in an object literal make every context a slow dictionary-mode object.
 */
class RequestContext implements CommandContext {
  readonly client: CommandContext['client'];
  readonly front: Front;
  readonly request: ProxyRequest;
  readonly dest: Address;
  readonly user: string | undefined;
  readonly sessionKey: string;
  readonly source: string;
  readonly snapshot: CommandContext['snapshot'];
  readonly metrics: CommandContext['metrics'];
  readonly record: CommandContext['record'];
  readonly limits: CommandContext['limits'];
  readonly udpBudget: CommandContext['udpBudget'];
  readonly #conn: ClientConnection;

  constructor(conn: ClientConnection, front: Front, record: AccessRecord, request: ProxyRequest, user: string | undefined, snapshot: CommandContext['snapshot']) {
    this.#conn = conn;
    this.client = conn.socket;
    this.front = front;
    this.request = request;
    this.dest = request.dest;
    this.user = user;
    this.sessionKey = request.sessionKey;
    this.source = conn.source.host;
    this.snapshot = snapshot;
    this.metrics = conn.metrics;
    this.record = record;
    this.limits = conn.limits;
    this.udpBudget = conn.udpBudget;
  }

  current(): CommandContext['snapshot'] {
    return this.#conn.current();
  }

  get log(): CommandContext['log'] {
    return this.#conn.log;
  }

  get signal(): AbortSignal {
    return this.#conn.signal;
  }

  get cancel(): CommandContext['cancel'] {
    return this.#conn;
  }

  attach(remote: Parameters<CommandContext['attach']>[0], again = false): void {
    this.#conn.attach(remote, again);
  }
}

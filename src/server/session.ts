import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { GatewayError, ProtocolError, Rep, toRep } from '../errors.js';
import type { Metrics } from '../observe/metrics.js';
import type { ByteBudget } from '../outbound/byte-budget.js';
import { Cmd, Method } from '../protocol/constants.js';
import { ServerHandshake } from '../protocol/handshake.js';
import type { HandshakeEvent } from '../protocol/types.js';
import { handleBind } from './bind.js';
import { handleConnect } from './connect.js';
import type { AccessRecord, CommandHandler, Snapshot } from './context.js';
import { formatAddress } from './context.js';
import { ChunkReader } from './reader.js';
import type { ConnectionInfo, ConnectionRegistry, LiveConnection } from './registry.js';
import { handleUdpAssociate } from './udp-associate.js';

const HANDLERS: Readonly<Record<number, { cmd: 'connect' | 'bind' | 'udp'; run: CommandHandler }>> = {
  [Cmd.CONNECT]: { cmd: 'connect', run: handleConnect },
  [Cmd.BIND]: { cmd: 'bind', run: handleBind },
  [Cmd.UDP_ASSOCIATE]: { cmd: 'udp', run: handleUdpAssociate },
};

// Abort reasons made once: abort() without one builds a DOMException per connection.
const CLIENT_GONE = new GatewayError('GW_ERR_CLIENT_GONE', 'client closed the connection', Rep.GENERAL_FAILURE);
const GATEWAY_STOPPED = new GatewayError('GW_ERR_STOPPED', 'gateway stopped', Rep.GENERAL_FAILURE);

/** How long a refused or failed client may take to read our last bytes before it is cut off. */
const LINGER_MS = 2_000;

export interface SessionDeps {
  snapshot: () => Snapshot;
  metrics: Metrics;
  log: Logger;
  /** Open connections, for the admin API; the session registers itself. */
  connections?: ConnectionRegistry;
  /** Aborted when the gateway stops for good (after draining). */
  shutdown: AbortSignal;
  /** The gateway's UDP byte budget, shared by every association. */
  udpBudget: ByteBudget;
}

interface Authenticated {
  user: string | undefined;
  sessionKey: string | undefined;
}

/**
 * One client connection: greeting → auth → request → command handler → one
 * access-log line. Never throws: every failure becomes a reply or a close.
 */
export async function runSession(client: Socket, sid: number, deps: SessionDeps): Promise<void> {
  const started = performance.now();
  const source = client.remoteAddress ?? '';
  const record: AccessRecord = { client: `${formatAddress({ host: source, port: client.remotePort ?? 0 })}`, up: 0, down: 0 };
  const log = deps.log.child({ sid });
  const snapshot = deps.snapshot(); // one config for the whole request
  const hs = new ServerHandshake();
  const controller = new AbortController();
  const onShutdown = (): void => controller.abort(GATEWAY_STOPPED);
  deps.shutdown.addEventListener('abort', onShutdown, { once: true });
  client.once('close', () => controller.abort(CLIENT_GONE));
  client.on('error', () => {}); // reported through 'close'; a reset client is not our failure
  client.setNoDelay(true);
  deps.connections?.add(new SessionEntry(sid, client, record));

  // RFC 1928 leaves the handshake unbounded in time; handshake_timeout covers accept → complete request.
  const handshakeTimer = setTimeout(() => {
    record.error = 'handshake timeout';
    client.destroy();
  }, snapshot.config.limits.handshake_timeout);

  const reader = new ChunkReader(client);
  try {
    const request = await readRequest(client, hs, reader, snapshot, record);
    clearTimeout(handshakeTimer);
    reader.detach();
    if (!request) return;
    deps.metrics.handshakeSeconds.observe((performance.now() - started) / 1000);

    const handler = HANDLERS[request.event.cmd];
    if (!handler) throw new ProtocolError(`command ${request.event.cmd}`, Rep.COMMAND_NOT_SUPPORTED);
    record.cmd = handler.cmd;
    record.dest = formatAddress(request.event.dest);
    const user = request.auth.user;
    await handler.run({
      client,
      hs,
      dest: request.event.dest,
      user,
      sessionKey: request.auth.sessionKey ?? user ?? source,
      source,
      snapshot,
      metrics: deps.metrics,
      log,
      signal: controller.signal,
      record,
      udpBudget: deps.udpBudget,
    });
  } catch (err) {
    reader.detach(); // a failed handshake must not keep pausing what closeClient drains
    fail(client, hs, err, record);
  } finally {
    clearTimeout(handshakeTimer);
    deps.shutdown.removeEventListener('abort', onShutdown);
    if (!client.destroyed) closeClient(client);
    await closed(client);
    deps.connections?.delete(sid);
    const ms = Math.round(performance.now() - started);
    const rep = String(record.rep ?? 'none');
    deps.metrics.sessionEnded({ protocol: 'socks5', command: record.cmd ?? 'none', rep, rule: record.rule, user: record.user, up: record.up, down: record.down }, snapshot.config);
    log.info({ ...record, ms }, 'session end');
  }
}

/** Greeting and auth; returns the request, or undefined when the client was answered and closed. */
async function readRequest(
  client: Socket,
  hs: ServerHandshake,
  reader: ChunkReader,
  snapshot: Snapshot,
  record: AccessRecord,
): Promise<{ event: Extract<HandshakeEvent, { type: 'request' }>; auth: Authenticated } | undefined> {
  const auth: Authenticated = { user: undefined, sessionKey: undefined };
  const events: HandshakeEvent[] = [];
  for (;;) {
    if (events.length === 0) {
      const chunk = await reader.next();
      if (chunk === null) {
        record.error = hs.state === 'greeting' && !record.error ? 'closed before greeting' : (record.error ?? 'closed during handshake');
        return undefined;
      }
      events.push(...hs.receive(chunk));
      continue;
    }
    const ev = events.shift()!;
    if (ev.type === 'greeting') {
      const method = snapshot.auth.chooseMethod(ev.methods);
      client.write(hs.selectMethod(method));
      if (method === Method.NO_ACCEPTABLE) {
        record.error = 'no acceptable auth method';
        closeClient(client);
        return undefined;
      }
    } else if (ev.type === 'auth') {
      const result = await snapshot.auth.verify(ev.username, ev.password);
      if (client.destroyed) return undefined;
      client.write(hs.authResult(result.ok));
      if (!result.ok) {
        record.user = ev.username;
        record.error = 'authentication failed';
        closeClient(client);
        return undefined;
      }
      auth.user = result.user;
      auth.sessionKey = result.sessionKey;
      record.user = result.user;
    } else {
      return { event: ev, auth };
    }
    events.push(...hs.receive(Buffer.alloc(0)));
  }
}

/** A failure before the reply becomes the reply (RFC 1928 §6); after it, just a close. */
function fail(client: Socket, hs: ServerHandshake, err: unknown, record: AccessRecord): void {
  record.error ??= err instanceof Error ? err.message : String(err);
  if (client.destroyed) return;
  if (hs.state === 'requested') {
    record.rep = toRep(err);
    closeClient(client, hs.reply(record.rep));
  } else if (err instanceof ProtocolError) {
    if (hs.state === 'request') record.rep = err.rep;
    closeClient(client, hs.failure(err));
  } else {
    client.destroy(); // the reply is out: nothing left to tell the client
  }
}

/** Sends the last bytes, half-closes, and cuts the client off if it does not close in time. */
export function closeClient(client: Socket, bytes?: Buffer): void {
  if (client.destroyed) return;
  if (bytes) client.end(bytes);
  else client.end();
  const timer = setTimeout(() => client.destroy(), LINGER_MS);
  timer.unref();
  client.once('close', () => clearTimeout(timer));
  // Whatever the client still sends is discarded; it must not fill buffers.
  client.resume();
}

function closed(socket: Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/** The admin API's view of this session: the access record as it fills in, live byte counts. */
class SessionEntry implements LiveConnection {
  readonly id: number;
  readonly #client: Socket;
  readonly #record: AccessRecord;
  readonly #started = Date.now();

  constructor(id: number, client: Socket, record: AccessRecord) {
    this.id = id;
    this.#client = client;
    this.#record = record;
  }

  info(): ConnectionInfo {
    const r = this.#record;
    return {
      id: this.id,
      client: r.client,
      protocol: 'socks5',
      user: r.user,
      command: r.cmd,
      dest: r.dest,
      rule: r.rule,
      outbound: r.outbound,
      member: r.member,
      // The client socket's own counters: handshake bytes included, readable mid-relay.
      up: this.#client.bytesRead,
      down: this.#client.bytesWritten,
      started: this.#started,
    };
  }

  kill(reason: string): void {
    this.#record.error = reason;
    // The relay sees the client close without FIN and destroys the other side too.
    this.#client.destroy();
  }
}

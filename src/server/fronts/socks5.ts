// The SOCKS5 front (RFC 1928, RFC 1929): greeting → method → auth → request, then the pipeline.

import type { Socket } from 'node:net';
import { ProtocolError, Rep, toRep } from '../../errors.js';
import { Cmd, EMPTY, Method } from '../../protocol/constants.js';
import { ServerHandshake } from '../../protocol/handshake.js';
import { UnknownCommandError } from '../../protocol/messages.js';
import type { HandshakeEvent } from '../../protocol/types.js';
import type { Command } from '../../config/types.js';
import { refusalReason } from '../auth.js';
import type { ClientConnection } from '../client.js';
import { closeClient } from '../close.js';
import { formatAddress, refusedLogins } from '../context.js';
import { serve } from '../pipeline.js';
import type { ChunkReader } from '../reader.js';
import type { Front } from '../request.js';
import { requestContext } from './context.js';

// The codec hands over these three only: any other CMD is refused there (UnknownCommandError).
const COMMANDS: Readonly<Record<Cmd, Command>> = {
  [Cmd.CONNECT]: 'connect',
  [Cmd.BIND]: 'bind',
  [Cmd.UDP_ASSOCIATE]: 'udp',
};

interface Authenticated {
  user?: string;
  sessionKey?: string;
  params?: Readonly<Record<string, string>>;
}

type RequestEvent = Extract<HandshakeEvent, { type: 'request' }>;

export async function socks5Front(conn: ClientConnection, reader: ChunkReader, first: Buffer): Promise<void> {
  const hs = new ServerHandshake();
  const { socket: client, record } = conn;
  const held = new HeldAnswers();
  let request: { event: RequestEvent; auth: Authenticated } | undefined;
  try {
    request = await readRequest(conn, hs, reader, first, held);
  } catch (err) {
    // RFC 1928 §6: malformed input gets the reply its phase allows, then a close.
    record.error ??= err instanceof Error ? err.message : String(err);
    reader.detach(); // a failed handshake must not keep pausing what closeClient drains
    if (client.destroyed || !(err instanceof ProtocolError)) return;
    if (hs.state === 'request') record.rep = err.rep;
    if (err instanceof UnknownCommandError) record.dest = formatAddress(err.dest);
    closeClient(client, held.with(hs.failure(err)));
    return;
  }
  reader.detach();
  if (!request) return;
  conn.handshakeDone();
  const front: Front = {
    granted(bound) {
      client.write(held.with(hs.reply(Rep.SUCCEEDED, bound())));
    },
    refused(err) {
      const rep = toRep(err);
      closeClient(client, held.with(hs.reply(rep)));
      return rep;
    },
    remainder() {
      return hs.remainder();
    },
  };
  const { event, auth } = request;
  record.dest = formatAddress(event.dest);
  const command = COMMANDS[event.cmd];
  const ctx = requestContext(conn, front, record, { protocol: 'socks5', command, dest: event.dest, ...auth });
  record.cmd = command;
  // Returned, not awaited: nothing is left to do here, and this frame need not stay
  // suspended for the life of the relay.
  return serve(ctx);
}

/** Greeting and auth; returns the request, or undefined when the client was answered and closed. */
async function readRequest(
  conn: ClientConnection,
  hs: ServerHandshake,
  reader: ChunkReader,
  first: Buffer,
  held: HeldAnswers,
): Promise<{ event: RequestEvent; auth: Authenticated } | undefined> {
  const { socket: client, record, snapshot } = conn;
  const auth: Authenticated = {};
  const events: HandshakeEvent[] = [...hs.receive(first)];
  for (;;) {
    if (events.length === 0) {
      held.flush(client); // our answer must be out before we wait for the client's next message
      const chunk = await reader.next();
      conn.rearm();
      if (chunk === null) {
        record.error ??= 'closed during handshake';
        return undefined;
      }
      events.push(...hs.receive(chunk));
      continue;
    }
    const ev = events.shift()!;
    if (ev.type === 'greeting') {
      const method = snapshot.auth.chooseMethod(ev.methods);
      held.add(hs.selectMethod(method));
      if (method === Method.NO_ACCEPTABLE) {
        record.error = 'no acceptable auth method';
        reader.detach(); // before closeClient: a reader detached after it re-pauses what it drains
        closeClient(client, held.with());
        return undefined;
      }
    } else if (ev.type === 'auth') {
      const result = await snapshot.auth.verify(ev.username, ev.password, conn.source.host, conn);
      if (client.destroyed) return undefined;
      held.add(hs.authResult(result.ok));
      if (!result.ok) {
        record.user = ev.username;
        refusedLogins.add(record);
        record.error = refusalReason(result);
        reader.detach();
        closeClient(client, held.with());
        return undefined;
      }
      if (result.user !== undefined) auth.user = result.user;
      if (result.sessionKey !== undefined) auth.sessionKey = result.sessionKey;
      if (result.params) auth.params = result.params;
      record.user = result.user;
    } else {
      return { event: ev, auth };
    }
    events.push(...hs.receive(EMPTY));
  }
}

/**
 * Answers to the greeting and to the login, held for as long as the client's next message is
 * already here: a client that pipelined its request (most send greeting and request in one
 * packet) gets the method selection and the reply in one write(2) of one buffer, rather than
 * two writes or a corked writev, the dearer call. Written before we wait for more bytes.
 */
class HeldAnswers {
  #held: Buffer | undefined;

  add(answer: Buffer): void {
    this.#held = this.#held ? Buffer.concat([this.#held, answer]) : answer;
  }

  /** What is held with `last` behind it, handed over once. */
  with(last: Buffer): Buffer;
  with(last?: Buffer): Buffer | undefined;
  with(last?: Buffer): Buffer | undefined {
    const held = this.#held;
    this.#held = undefined;
    if (!held) return last;
    return last ? Buffer.concat([held, last]) : held;
  }

  flush(client: Socket): void {
    const held = this.with();
    if (held) client.write(held);
  }
}

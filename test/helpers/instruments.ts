// Test instruments that sit between the gateway and a real upstream: a recording SOCKS5
// front (what RFC 1929 credentials a member receives) and a delaying forwarder (a slow
// member). Both relay to a real server; neither answers anything itself beyond the login.
// And ones that stand in for an upstream: a scripted SOCKS5 server with one fixed reply, and
// one with a fixed login answer (what no real server can be made to send on demand).

import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { listenTracked } from './servers.js';

export interface Login {
  username: string;
  password: string;
}

export interface RecordingSocks {
  host: string;
  port: number;
  /** Every RFC 1929 login received, in order. */
  logins: Login[];
  close(): Promise<void>;
}

/** Reads exactly `n` bytes (or fails when the socket ends first). */
function readN(s: Socket, n: number, state: { buf: Buffer }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      if (state.buf.length < n) return false;
      const out = state.buf.subarray(0, n);
      state.buf = state.buf.subarray(n);
      s.off('data', onData);
      s.off('end', onEnd);
      s.pause();
      resolve(out);
      return true;
    };
    const onData = (b: Buffer): void => {
      state.buf = Buffer.concat([state.buf, b]);
      check();
    };
    const onEnd = (): void => reject(new Error('ended'));
    if (check()) return;
    s.on('data', onData);
    s.once('end', onEnd);
    s.resume();
  });
}

/**
 * A SOCKS5 server that insists on username/password (RFC 1929), records the login, accepts
 * it, then hands the rest of the conversation to the no-auth SOCKS5 server at `relayTo`
 * (it greets that one itself, so the client's CONNECT request reaches it unchanged).
 */
export async function startRecordingSocks(host: string, relayTo: { host: string; port: number }): Promise<RecordingSocks> {
  const logins: Login[] = [];
  const srv = createServer((client) => {
    client.on('error', () => {});
    void (async () => {
      const state = { buf: Buffer.alloc(0) };
      const head = await readN(client, 2, state);
      await readN(client, head[1]!, state); // offered methods: USERPASS is chosen whatever they are
      client.write(Buffer.from([5, 2]));
      const [, ulen] = await readN(client, 2, state);
      const username = (await readN(client, ulen!, state)).toString('utf8');
      const [plen] = await readN(client, 1, state);
      const password = (await readN(client, plen!, state)).toString('utf8');
      logins.push({ username, password });
      client.write(Buffer.from([1, 0]));
      const upstream = connect(relayTo);
      upstream.on('error', () => client.destroy());
      upstream.write(Buffer.from([5, 1, 0]));
      const upState = { buf: Buffer.alloc(0) };
      await readN(upstream, 2, upState);
      if (state.buf.length > 0) upstream.write(state.buf);
      client.pipe(upstream).pipe(client);
      client.resume();
      upstream.resume();
    })().catch(() => client.destroy());
  });
  return { host, logins, ...(await listenTracked(srv, host)) };
}

export interface DelayingForwarder {
  host: string;
  port: number;
  /** How long each chunk coming back is held; may be changed at any time (a member that gets faster). */
  delayMs: number;
  close(): Promise<void>;
}

/** A TCP forwarder to `to` that holds every chunk coming back for `delayMs`: a slow member. */
export async function startDelayingForwarder(host: string, to: { host: string; port: number }, delayMs: number): Promise<DelayingForwarder> {
  const srv = createServer((client) => {
    client.on('error', () => {});
    const upstream = connect(to);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => setTimeout(() => client.destroy(), forwarder.delayMs + 10).unref());
    client.pipe(upstream);
    upstream.on('data', (b: Buffer) => {
      setTimeout(() => {
        if (!client.destroyed) client.write(b);
      }, forwarder.delayMs).unref();
    });
  });
  const forwarder: DelayingForwarder = { host, delayMs, ...(await listenTracked(srv, host)) };
  return forwarder;
}

/**
 * Test instrument (scripted SOCKS5 upstream, or SOCKS4 with `version` 4: no greeting then):
 * no auth, then `reply` to every request, and it keeps the connection open: whether it closes
 * is up to the gateway. `accepted` is the first connection, for a test to write more replies.
 */
export async function startScriptedSocks(
  reply: Buffer,
  host = '127.0.0.1',
  version: 4 | 5 = 5,
): Promise<{ host: string; port: number; accepted: Promise<Socket>; close(): Promise<void> }> {
  let gotSocket!: (s: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (gotSocket = resolve));
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    gotSocket(s);
    s.on('error', () => {});
    let step = version === 5 ? 0 : 1;
    s.on('data', () => void s.write(step++ === 0 ? Buffer.from([5, 0]) : reply));
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    host,
    port: (server.address() as { port: number }).port,
    accepted,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface HeldListener {
  host: string;
  port: number;
  /** Connections accepted so far, oldest first; none is ever answered: the test ends them. */
  accepted: Socket[];
  /** Resolves once `n` connections have been accepted. */
  accepting(n: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Test instrument (a member that hangs until the test says otherwise): accepts, reads and
 * never answers. Destroying one of `accepted` is the member dropping that connection.
 */
export async function startHeldListener(host = '127.0.0.1'): Promise<HeldListener> {
  const accepted: Socket[] = [];
  const srv = createServer((s) => {
    s.on('error', () => {});
    s.resume();
    accepted.push(s);
  });
  const accepting = async (n: number): Promise<void> => {
    // Each turn waits for one more connection: at most n turns.
    for (let turn = 0; turn < n && accepted.length < n; turn++) await once(srv, 'connection');
  };
  return { host, accepted, accepting, ...(await listenTracked(srv, host)) };
}

/**
 * Test instrument (an upstream whose login answer is broken): takes the greeting, chooses
 * RFC 1929 username/password (0x02), reads the login and answers it with `answer`, then
 * keeps the connection open: whether it closes is up to the gateway.
 */
export async function startJunkLoginSocks(answer: Buffer, host = '127.0.0.1'): Promise<{ host: string; port: number; close(): Promise<void> }> {
  const srv = createServer((s) => {
    s.on('error', () => {});
    let chunks = 0;
    s.on('data', () => {
      chunks++;
      if (chunks === 1) s.write(Buffer.from([5, 2])); // the greeting: username/password chosen
      else if (chunks === 2) s.write(answer); // the login
    });
  });
  return { host, ...(await listenTracked(srv, host)) };
}

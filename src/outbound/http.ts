// An HTTP proxy upstream: CONNECT (RFC 9110 §9.3.6) with Basic auth (RFC 7617), on Node's
// own HTTP client (`http.request` handed the stream we already have, so no agent and no
// hand-written parser), over TLS for an https:// proxy. The stream comes from `via` or our
// own connector (proxy-outbound.ts); TLS runs on top of it, so an https:// proxy can sit
// anywhere in a chain.

import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { isIP, isIPv6, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { HttpUpstreamConfig } from '../config/types.js';
import { GatewayError, Rep } from '../errors.js';
import { repeatsSecret, type Credentials } from './credentials.js';
import { guardErrors } from './early-data.js';
import { fromHttpError, HttpProxyRefusal, notAnHttpAnswer } from './http-errors.js';
import { createProxyOutbound, resolveHere, type Established, type HandshakeRun, type ProxyDeps } from './proxy-outbound.js';
import type { UpstreamOutbound } from './stats.js';
import type { Destination } from './types.js';
import { PLAIN_NOT_TLS } from './wrong-kind.js';

export interface HttpDeps extends ProxyDeps {
  /** PEM of the CA file `ca` names, read when the config is built; absent: Node's default trust store. */
  ca?: Buffer;
}

/** RFC 3986 §3.2.2 reg-name (no percent-encoding): what a CONNECT authority can carry as a name. */
const REG_NAME = /^[A-Za-z0-9\-._~!$&'()*+,;=]{1,255}$/;

/**
 * No `openUdp` and no `bind`: HTTP has neither, so UDP through it is dropped as unsupported
 * and BIND gets 0x07, and pools choose another member for those.
 */
export function createHttpOutbound(name: string, cfg: HttpUpstreamConfig, deps: HttpDeps): UpstreamOutbound {
  return createProxyOutbound(name, { host: cfg.host, port: cfg.port, username: cfg.username, password: cfg.password }, {
    targets: async (dest, ctx) => (cfg.remote_dns ? [sendableName(dest)] : resolveHere(dest, ctx, deps.dns)),
    handshake: async (socket, to, run) => {
      // A hop's stream the proxy has already closed: nothing can answer on it (as in socks5.ts).
      if (socket.destroyed) throw new Error('the proxy closed the connection before CONNECT');
      // A plain proxy waits for a request line that never comes: said, if it stays silent.
      if (cfg.tls) run.asking(`the TLS handshake (${PLAIN_NOT_TLS})`);
      const stream = cfg.tls ? await startTls(socket, cfg, deps.ca, run.signal) : socket;
      // Without TLS nothing comes back before the proxy has reached the destination: a proxy
      // that took our connection counts as alive, and a timeout is about the destination.
      run.heard();
      return connectThrough(stream, to, run, cfg.tls);
    },
    fromError: fromHttpError,
  }, deps);
}

function sendableName(to: Destination): Destination {
  if (isIP(to.host) !== 0 || REG_NAME.test(to.host)) return to;
  throw new GatewayError('GW_ERR_UPSTREAM_NAME', `name not sendable upstream: ${JSON.stringify(to.host)}`, Rep.ADDRESS_TYPE_NOT_SUPPORTED);
}

/** TLS to the proxy, verified against `ca` or the default store, with SNI unless the proxy is an IP literal (RFC 6066 §3). */
function startTls(socket: Socket, cfg: HttpUpstreamConfig, ca: Buffer | undefined, signal: AbortSignal): Promise<TLSSocket> {
  // RFC 6066 §3: a name goes in SNI without its trailing dot (`proxy.corp.example.` is an
  // absolute name, the same host), or a server picking its certificate by SNI finds none.
  const identity = (cfg.servername ?? cfg.host).replace(/\.$/, '');
  socket.resume(); // a hop's stream arrives paused (see keepEarlyData); a TLS server says nothing before our hello
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({
      socket,
      host: identity, // the name the certificate is checked against
      ...(isIP(identity) === 0 ? { servername: identity } : {}),
      ...(ca ? { ca } : {}),
      ALPNProtocols: ['http/1.1'],
    });
    const settle = (): void => {
      signal.removeEventListener('abort', onAbort);
      tls.off('error', onError);
      tls.off('close', onClose);
    };
    const onAbort = (): void => {
      settle();
      tls.destroy();
      reject(new Error('TLS handshake with the proxy cut short'));
    };
    const onError = (err: Error): void => {
      settle();
      reject(err);
    };
    // A TLS socket destroyed before its handshake (by the deadline, or a proxy that closed)
    // emits 'close' and no 'error': without this the dial never settled.
    const onClose = (): void => {
      settle();
      reject(new Error('the proxy closed the connection before the TLS handshake completed'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    tls.once('secureConnect', () => {
      settle();
      resolve(tls);
    });
    tls.on('error', onError);
    tls.once('close', onClose);
  });
}

/** What the log gets instead of a proxy's words that repeat our password. */
const WITHHELD = '(withheld: it repeats the credentials sent)';

/** Interim responses read past before the final one; more than this many is not a proxy we can use. */
const MAX_INTERIM = 8;

/** RFC 9110 §15.2: a 1xx other than 101 comes before the final response, which the client must wait for. */
const isInterim = (status: number | undefined): boolean => status !== undefined && status >= 100 && status < 200 && status !== 101;

/** CONNECT on `stream`; resolves at a 2xx with the tunnel, rejects with HttpProxyRefusal otherwise. */
function connectThrough(stream: Socket, to: Destination, run: HandshakeRun, tls: boolean): Promise<Established> {
  const authority = `${isIPv6(to.host) ? `[${to.host}]` : to.host}:${to.port}`;
  return new Promise((resolve, reject) => {
    let req: ClientRequest | undefined;
    let interim = 0;
    /** Some bytes of an answer came: a close from then on is no close before answering. */
    let answered = false;
    // Settles here too: node's client reports nothing for a stream that closed before it
    // took it (its 'close' has passed), so only the deadline ends such a request.
    const onAbort = (): void => {
      req?.destroy();
      stream.destroy();
      reject(new Error('CONNECT to the proxy cut short'));
    };
    run.signal.addEventListener('abort', onAbort, { once: true });
    /** Sends the CONNECT (`send`), or only reads the next response to it on the same stream. */
    const ask = (send: boolean): void => {
      req = request({
        method: 'CONNECT',
        path: authority,
        setHost: false,
        headers: { host: authority, ...basicAuth(run.credentials) },
        createConnection: () => stream,
      });
      // A hop's stream arrives paused (see keepEarlyData), maybe with bytes put back in front:
      // it flows once the client's parser listens, so none of them is lost.
      req.once('socket', (s: Socket) => {
        // After node's client has its own listener on the stream, so nothing flows past it.
        if (!answered) s.once('data', () => void (answered = true));
        s.resume();
      });
      req.once('connect', (res, socket: Socket, head: Buffer) => {
        // Paused here, in the parser's callback, so nothing after the head is read before the relay.
        socket.pause();
        // Node's client takes any response to CONNECT for the final one: a 1xx before it
        // (a 100, a 102 while the proxy dials) is read past, its bytes after it put back.
        if (isInterim(res.statusCode) && ++interim <= MAX_INTERIM) {
          if (head.length > 0) socket.unshift(head);
          ask(false);
          return;
        }
        run.signal.removeEventListener('abort', onAbort);
        // The HTTP client no longer listens for 'error', and until the relay does a reset must not crash us.
        guardErrors(socket);
        try {
          resolve(finalAnswer(res, socket, head, basicSent(run.credentials)));
        } catch (err) {
          reject(err);
        }
      });
      req.once('error', (err) => {
        run.signal.removeEventListener('abort', onAbort);
        stream.destroy();
        reject(notAnHttpAnswer(err, answered, tls));
      });
      if (send) req.end();
    };
    ask(true);
  });
}

/** The tunnel at a 2xx; otherwise the stream is closed and the refusal thrown, read off the head (never a body). */
function finalAnswer(res: IncomingMessage, socket: Socket, head: Buffer, sent: Credentials): Established {
  const status = res.statusCode;
  if (status === undefined || status < 200 || status > 299) {
    socket.destroy();
    const squid = res.headers['x-squid-error'];
    // A proxy may repeat what we sent it (a 407 quoting the credentials): that never reaches the log.
    const shown = (text: string): string => (repeatsSecret(text, sent) ? WITHHELD : text);
    const detail = typeof squid === 'string' ? squid : undefined;
    throw new HttpProxyRefusal(status ?? 0, shown(res.statusMessage ?? ''), detail === undefined ? undefined : shown(detail), detail);
  }
  // Bytes the destination sent right after the proxy's 200 came in the same read: the client gets them first.
  return { socket, head: head.length > 0 ? head : undefined };
}

/**
 * What Basic auth sends of `c`: nothing without a username (a member `http://:pass@host`), so
 * the password is not sent and a refusal cannot repeat it (nor be withheld for seeming to).
 */
function basicSent(c: Credentials): Credentials {
  return c.username === undefined ? {} : c;
}

/** RFC 7617 §2: `user-id ":" password` in UTF-8, base64. */
function basicAuth(c: Credentials): Record<string, string> {
  const { username, password } = basicSent(c);
  if (username === undefined) return {};
  const token = Buffer.from(`${username}:${password ?? ''}`, 'utf8').toString('base64');
  return { 'proxy-authorization': `Basic ${token}` };
}

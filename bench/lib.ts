// Shared benchmark pieces: servers, a minimal SOCKS5 client and a minimal Node relay to compare with.
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { decodeReply, encodeGreeting, encodeRequest, NEED_DATA } from '../src/protocol/messages.js';
import { Cmd } from '../src/protocol/constants.js';

export async function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  server.listen(0, host);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

export function echoServer(): Server {
  return createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
}

/**
 * Reads an 8-byte count (big-endian), then discards that many bytes and answers with the
 * count it read. Not at the client's FIN: a relay without half-close (microsocks) closes the
 * client's side as soon as it reads the FIN, with bytes still on their way.
 */
export function sinkServer(): Server {
  return createServer((s) => {
    s.on('error', () => {});
    let head = Buffer.alloc(0);
    let want = -1n;
    let got = 0n;
    s.on('data', (chunk: Buffer) => {
      if (want < 0n) {
        head = Buffer.concat([head, chunk]);
        if (head.length < 8) return;
        want = head.readBigUInt64BE(0);
        chunk = head.subarray(8);
      }
      const before = got;
      got += BigInt(chunk.length);
      if (before < want && got >= want) {
        const answer = Buffer.alloc(8);
        answer.writeBigUInt64BE(got);
        s.write(answer);
      }
    });
  });
}

/**
 * What every relayed connection of socksgate must do beyond moving bytes, and the bare relay
 * does not: TCP_NODELAY on both sockets, the outbound socket's own address as BND (RFC 1928
 * §6: a getsockname), and one access-log line through the gateway's logger when it ends.
 */
export interface RelayDuties {
  log: Logger;
}

/**
 * The least a SOCKS5 relay can be: no auth, CONNECT to IPv4 only, pipe both ways. With
 * `duties`, the same relay doing what the contract obliges of each connection as well: the
 * floor below which no relay that keeps the contract can go.
 */
export function minimalRelay(duties?: RelayDuties): Server {
  return createServer((c) => {
    c.on('error', () => {});
    if (duties) c.setNoDelay(true);
    c.once('data', (greeting: Buffer) => {
      c.write(Buffer.from([5, 0]));
      const request = greeting.length > 2 + greeting[1]! ? greeting.subarray(2 + greeting[1]!) : undefined;
      const onRequest = (req: Buffer): void => {
        const host = `${req[4]}.${req[5]}.${req[6]}.${req[7]}`;
        const port = req.readUInt16BE(8);
        const r = connect({ host, port }, () => {
          const reply = Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]);
          if (duties) {
            r.setNoDelay(true);
            const bound = r.localAddress!.split('.');
            for (let i = 0; i < 4; i++) reply[4 + i] = Number(bound[i]);
            reply.writeUInt16BE(r.localPort!, 8);
          }
          c.write(reply);
          if (req.length > 10) r.write(req.subarray(10));
          c.pipe(r);
          r.pipe(c);
        });
        r.on('error', () => c.destroy());
        if (duties) {
          c.once('close', () =>
            duties.log.info({ client: `${c.remoteAddress}:${c.remotePort}`, dest: `${host}:${port}`, up: c.bytesRead, down: c.bytesWritten }, 'connection'),
          );
        }
      };
      if (request && request.length >= 10) onRequest(request);
      else c.once('data', onRequest);
    });
  });
}

/**
 * minimalRelay's counterpart on node's own HTTP server: `CONNECT host:port`, a dial, "200",
 * pipe both ways, nothing else. Beside minimalRelay, it shows what node's HTTP server (its
 * parser, the request object, the hand-over at CONNECT) costs a tunnel before any gateway
 * work: the floor under socksgate's HTTP CONNECT cycles.
 */
export function minimalConnectRelay(): HttpServer {
  const server = createHttpServer();
  server.on('connect', (req: IncomingMessage, c: Duplex, head: Buffer) => {
    c.on('error', () => {});
    const m = /^(.+):(\d+)$/.exec(req.url ?? '');
    if (!m) return void c.destroy();
    const r = connect({ host: m[1]!, port: Number(m[2]) }, () => {
      c.write('HTTP/1.1 200 Connection established\r\n\r\n');
      if (head.length > 0) r.write(head);
      c.pipe(r);
      r.pipe(c);
    });
    r.on('error', () => c.destroy());
  });
  return server;
}

/**
 * The next chunk the socket reads; rejects when it ends or closes first. `once(s, 'data')`
 * rejects only on 'error', and waits forever on a proxy that closes cleanly.
 */
export function nextChunk(s: Socket, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      off();
      resolve(chunk);
    };
    const onEnd = (): void => {
      off();
      reject(new Error(`${what}: the connection closed`));
    };
    const onError = (err: Error): void => {
      off();
      reject(err);
    };
    const off = (): void => {
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('close', onEnd);
      s.off('error', onError);
    };
    s.on('data', onData);
    s.on('end', onEnd);
    s.on('close', onEnd);
    s.on('error', onError);
  });
}

/**
 * SOCKS5 CONNECT with no auth; resolves once the reply is in. Greeting and request go in
 * one packet, as curl and most clients send them, unless `lockstep` (for servers that
 * read the greeting and drop what came with it, such as microsocks).
 */
export async function socksConnect(proxyPort: number, destPort: number, destHost = '127.0.0.1', lockstep = false): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port: proxyPort, allowHalfOpen: true });
  s.setNoDelay(true);
  await once(s, 'connect');
  const request = encodeRequest(Cmd.CONNECT, { host: destHost, port: destPort });
  s.write(lockstep ? encodeGreeting([0]) : Buffer.concat([encodeGreeting([0]), request]));
  // Method selection (2 bytes), then a reply whose length depends on its address type.
  let got = Buffer.alloc(0);
  let reply: ReturnType<typeof decodeReply> = NEED_DATA;
  let requested = !lockstep;
  while (got.length < 2 || (reply = decodeReply(got.subarray(2))) === NEED_DATA) {
    if (!requested && got.length >= 2) {
      s.write(request);
      requested = true;
    }
    got = Buffer.concat([got, await nextChunk(s, 'SOCKS5 handshake')]);
  }
  if (reply.value.rep !== 0) throw new Error(`reply ${reply.value.rep}`);
  s.pause();
  const rest = got.subarray(2 + reply.size);
  if (rest.length > 0) s.unshift(rest);
  return s;
}

/** HTTP CONNECT (RFC 9110 §9.3.6); resolves once the 200 head is in, bytes behind it put back. */
export async function httpConnect(proxyPort: number, destPort: number, destHost = '127.0.0.1'): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port: proxyPort, allowHalfOpen: true });
  s.setNoDelay(true);
  await once(s, 'connect');
  s.write(`CONNECT ${destHost}:${destPort} HTTP/1.1\r\nHost: ${destHost}:${destPort}\r\n\r\n`);
  let got = Buffer.alloc(0);
  let end = -1;
  while ((end = got.indexOf('\r\n\r\n')) === -1) {
    got = Buffer.concat([got, await nextChunk(s, 'HTTP CONNECT')]);
  }
  if (!got.subarray(0, 12).toString().startsWith('HTTP/1.1 200')) throw new Error(`CONNECT answered ${got.subarray(0, 12).toString()}`);
  s.pause();
  const rest = got.subarray(end + 4);
  if (rest.length > 0) s.unshift(rest);
  return s;
}

/** Rejects when `work` takes longer than `ms`: a relay that hangs must not hang the benchmark. */
export function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

export async function directConnect(_proxyPort: number, destPort: number): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port: destPort, allowHalfOpen: true });
  s.setNoDelay(true);
  await once(s, 'connect');
  return s;
}

export type Connector = (proxyPort: number, destPort: number) => Promise<Socket>;

export function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

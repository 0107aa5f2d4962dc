// Shared benchmark pieces: servers, a minimal SOCKS5 client and a minimal Node relay to compare with.
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
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

/** Reads and discards everything; answers "done" after the client's FIN. */
export function sinkServer(): Server {
  return createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.on('end', () => s.end('done'));
    s.resume();
  });
}

/** The least a SOCKS5 relay can be: no auth, CONNECT to IPv4 only, pipe both ways. */
export function minimalRelay(): Server {
  return createServer((c) => {
    c.on('error', () => {});
    c.once('data', (greeting: Buffer) => {
      c.write(Buffer.from([5, 0]));
      const request = greeting.length > 2 + greeting[1]! ? greeting.subarray(2 + greeting[1]!) : undefined;
      const onRequest = (req: Buffer): void => {
        const host = `${req[4]}.${req[5]}.${req[6]}.${req[7]}`;
        const port = req.readUInt16BE(8);
        const r = connect({ host, port }, () => {
          c.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]));
          if (req.length > 10) r.write(req.subarray(10));
          c.pipe(r);
          r.pipe(c);
        });
        r.on('error', () => c.destroy());
      };
      if (request && request.length >= 10) onRequest(request);
      else c.once('data', onRequest);
    });
  });
}

/** SOCKS5 CONNECT with no auth, greeting and request pipelined; resolves once the reply is in. */
export async function socksConnect(proxyPort: number, destPort: number, destHost = '127.0.0.1'): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port: proxyPort, allowHalfOpen: true });
  s.setNoDelay(true);
  await once(s, 'connect');
  s.write(Buffer.concat([encodeGreeting([0]), encodeRequest(Cmd.CONNECT, { host: destHost, port: destPort })]));
  // Method selection (2 bytes), then a reply whose length depends on its address type.
  let got = Buffer.alloc(0);
  let reply: ReturnType<typeof decodeReply> = NEED_DATA;
  while (got.length < 2 || (reply = decodeReply(got.subarray(2))) === NEED_DATA) {
    const [chunk] = (await once(s, 'data')) as [Buffer];
    got = Buffer.concat([got, chunk]);
  }
  if (reply.value.rep !== 0) throw new Error(`reply ${reply.value.rep}`);
  s.pause();
  const rest = got.subarray(2 + reply.size);
  if (rest.length > 0) s.unshift(rest);
  return s;
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

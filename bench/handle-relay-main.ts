// A SOCKS5 CONNECT relay on libuv's TCP handles directly: no net.Socket, no streams, no
// promises. It is a bench instrument, not a design: it reaches the handles through
// process.binding (internal, deprecated), keeps no backpressure, and serves only what the
// cycles run sends (no auth, IPv4, the greeting and request possibly in one chunk). It shows
// what one core of node can do per connection below the public API, the floor under the bare
// relay (bench/lib.ts) and the gateway. Only the cycles figure is taken from it.

interface Handle {
  onread: (arrayBuffer?: ArrayBuffer) => void;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: object, data: Buffer): number;
  shutdown(req: object): number;
  close(): void;
  setNoDelay(on: boolean): number;
  getsockname(out: { address?: string; port?: number }): number;
}
interface ServerHandle {
  bind(host: string, port: number): number;
  listen(backlog: number): number;
  onconnection: (err: number, client: Handle) => void;
}
interface ConnectRequest {
  oncomplete: (status: number) => void;
  address: string;
  port: number;
}
interface TcpWrap {
  TCP: { new (kind: number): Handle & ServerHandle & { connect(req: ConnectRequest, host: string, port: number): number } };
  TCPConnectWrap: new () => ConnectRequest;
  constants: { SOCKET: number; SERVER: number };
}
interface StreamWrap {
  WriteWrap: new () => { handle?: Handle; oncomplete?: () => void; async?: boolean };
  ShutdownWrap: new () => { handle?: Handle; oncomplete?: () => void };
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
}

const binding = (process as unknown as { binding(name: string): unknown }).binding;
const tcp = binding('tcp_wrap') as TcpWrap;
const stream = binding('stream_wrap') as StreamWrap;
const UV_EOF = -4095;

const noop = (): void => {};

function write(h: Handle, data: Buffer): void {
  const req = new stream.WriteWrap();
  req.handle = h;
  req.oncomplete = noop;
  req.async = false;
  h.writeBuffer(req, data);
}

function shutdown(h: Handle): void {
  const req = new stream.ShutdownWrap();
  req.handle = h;
  req.oncomplete = noop;
  h.shutdown(req);
}

/** The chunk a read callback was called with, or its result code (EOF, an error). */
function readResult(arrayBuffer: ArrayBuffer | undefined): Buffer | number {
  const n = stream.streamBaseState[stream.kReadBytesOrError]!;
  if (n <= 0 || !arrayBuffer) return n;
  return Buffer.from(arrayBuffer, stream.streamBaseState[stream.kArrayBufferOffset]!, n);
}

/** Bytes from `a` to `b`; an EOF is passed on as a shutdown; both close at the second EOF or an error. */
function pass(a: Handle, b: Handle, state: { ends: number }): void {
  a.onread = (ab) => {
    const r = readResult(ab);
    if (typeof r !== 'number') return write(b, r);
    if (r === UV_EOF) {
      a.readStop();
      shutdown(b);
      if (++state.ends < 2) return;
    }
    a.close();
    b.close();
  };
}

function dial(client: Handle, request: Buffer): void {
  const host = `${request[4]}.${request[5]}.${request[6]}.${request[7]}`;
  const port = request.readUInt16BE(8);
  const remote = new tcp.TCP(tcp.constants.SOCKET);
  const req = new tcp.TCPConnectWrap();
  req.address = host;
  req.port = port;
  req.oncomplete = (status) => {
    if (status < 0) {
      remote.close();
      return client.close();
    }
    remote.setNoDelay(true);
    const bound: { address?: string; port?: number } = {};
    remote.getsockname(bound);
    const reply = Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]);
    reply.writeUInt16BE(bound.port ?? 0, 8);
    write(client, reply);
    const state = { ends: 0 };
    pass(client, remote, state);
    pass(remote, client, state);
    client.readStart();
    remote.readStart();
  };
  if (remote.connect(req, host, port) < 0) {
    remote.close();
    client.close();
  }
}

const server = new tcp.TCP(tcp.constants.SERVER);
if (server.bind('127.0.0.1', Number(process.argv[2])) < 0 || server.listen(511) < 0) throw new Error('cannot listen');
server.onconnection = (err, client) => {
  if (err < 0) return;
  client.setNoDelay(true);
  let greeted = false;
  client.onread = (ab) => {
    const r = readResult(ab);
    if (typeof r === 'number') return client.close();
    let chunk = r;
    if (!greeted) {
      greeted = true;
      write(client, Buffer.from([5, 0]));
      chunk = chunk.subarray(2 + chunk[1]!);
      if (chunk.length === 0) return;
    }
    client.readStop();
    dial(client, chunk);
  };
  client.readStart();
};
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

// UDP ASSOCIATE: round-trip latency (p50/p99) and datagrams per second through the relay,
// straight to a UDP echo server vs through the gateway vs through gateway + Dante.
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { parseConfig } from '../src/config/load.js';
import { Gateway } from '../src/gateway.js';
import { silentLogger } from '../src/observe/logger.js';
import { Cmd } from '../src/protocol/constants.js';
import { decodeReply, encodeGreeting, encodeRequest, encodeUdpDatagram, NEED_DATA } from '../src/protocol/messages.js';
import { startDante } from '../test/helpers/upstreams.js';
import { fmt } from './lib.js';

const PAYLOAD = Buffer.alloc(64, 0x61);
const PINGS = 2_000;
const FLOOD_MS = 1_000;
const WINDOW = 64;

/** How a client reaches the echo server: a socket, how to frame a payload, where to send it. */
interface Path {
  socket: DgramSocket;
  frame(payload: Buffer): Buffer;
  to: { host: string; port: number };
  control?: Socket;
}

async function udpSocket(): Promise<DgramSocket> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

async function echoServer(): Promise<DgramSocket> {
  const s = await udpSocket();
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  return s;
}

async function directPath(echoPort: number): Promise<Path> {
  return { socket: await udpSocket(), frame: (p) => p, to: { host: '127.0.0.1', port: echoPort } };
}

async function socksPath(proxyPort: number, echoPort: number): Promise<Path> {
  const socket = await udpSocket();
  const control = connect({ host: '127.0.0.1', port: proxyPort });
  await once(control, 'connect');
  control.write(Buffer.concat([encodeGreeting([0]), encodeRequest(Cmd.UDP_ASSOCIATE, { host: '127.0.0.1', port: socket.address().port })]));
  let got = Buffer.alloc(0);
  for (let i = 0; i < 10 && got.length < 12; i++) got = Buffer.concat([got, ((await once(control, 'data')) as [Buffer])[0]]);
  const reply = decodeReply(got.subarray(2));
  if (reply === NEED_DATA || reply.value.rep !== 0) throw new Error('ASSOCIATE refused');
  const dest = { host: '127.0.0.1', port: echoPort };
  return { socket, control, frame: (p) => encodeUdpDatagram(dest, p), to: reply.value.bound };
}

function nextAnswer(s: DgramSocket, ms = 1_000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      s.off('message', on);
      resolve(undefined);
    }, ms);
    const on = (m: Buffer): void => {
      clearTimeout(timer);
      s.off('message', on);
      resolve(m);
    };
    s.on('message', on);
  });
}

async function roundTrips(path: Path): Promise<{ p50: number; p99: number; lost: number }> {
  const times: number[] = [];
  let lost = 0;
  const frame = path.frame(PAYLOAD);
  for (let i = 0; i < PINGS; i++) {
    const start = performance.now();
    const answer = nextAnswer(path.socket, 200);
    path.socket.send(frame, path.to.port, path.to.host);
    if ((await answer) === undefined) {
      if (++lost > 20) break; // bounded: a path that loses this much is not worth timing
    } else times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const at = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? NaN;
  return { p50: at(0.5) * 1000, p99: at(0.99) * 1000, lost };
}

/** Keeps WINDOW datagrams in flight for FLOOD_MS; answers per second. A silent window refills. */
async function flood(path: Path): Promise<number> {
  const frame = path.frame(PAYLOAD);
  let answered = 0;
  let inFlight = 0;
  let lastAnswer = performance.now();
  const end = performance.now() + FLOOD_MS;
  const send = (): void => {
    inFlight++;
    path.socket.send(frame, path.to.port, path.to.host);
  };
  const onMessage = (): void => {
    answered++;
    inFlight--;
    lastAnswer = performance.now();
    if (performance.now() < end) send();
  };
  path.socket.on('message', onMessage);
  for (let i = 0; i < WINDOW; i++) send();
  const start = performance.now();
  while (performance.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
    if (performance.now() - lastAnswer > 20) for (inFlight = 0; inFlight < WINDOW; ) send(); // losses
  }
  const elapsed = (performance.now() - start) / 1000;
  path.socket.off('message', onMessage);
  await new Promise((r) => setTimeout(r, 50)); // let stragglers land before the next run
  return answered / elapsed;
}

async function measure(label: string, path: Path): Promise<void> {
  // Warm up (routing decision, channel open) before measuring.
  const warm = nextAnswer(path.socket, 2_000);
  path.socket.send(path.frame(PAYLOAD), path.to.port, path.to.host);
  if ((await warm) === undefined) {
    console.log(`${label.padEnd(18)} no answer: not measured`);
    path.control?.destroy();
    path.socket.close();
    return;
  }
  const rt = await roundTrips(path);
  const rate = await flood(path);
  console.log(
    `${label.padEnd(18)} rtt p50 ${fmt(rt.p50, 0).padStart(5)} µs  p99 ${fmt(rt.p99, 0).padStart(6)} µs  lost ${rt.lost}  ${fmt(rate, 0).padStart(8)} datagrams/s`,
  );
  path.control?.destroy();
  path.socket.close();
}

async function startGateway(extra: string[]): Promise<{ gw: Gateway; port: number }> {
  const yaml = ['listen: [{host: 127.0.0.1, port: 0}]', 'log: {level: silent}', ...extra].join('\n');
  const gw = await Gateway.start(parseConfig(yaml, '<bench>', {}), { log: silentLogger() });
  return { gw, port: gw.addresses[0]!.port };
}

export async function run(): Promise<void> {
  const echo = await echoServer();
  const echoPort = echo.address().port;
  const dante = await startDante({ host: '127.0.0.7' }).catch((err: unknown) => {
    console.log(`(no Dante: ${err instanceof Error ? err.message.split('\n')[0] : String(err)})`);
    return undefined;
  });
  const plain = await startGateway([]);
  const viaDante = dante ? await startGateway([`upstreams: {dante: {type: socks5, host: ${dante.host}, port: ${dante.port}}}`, 'default: dante']) : undefined;
  try {
    console.log(`${PINGS} sequential round trips of ${PAYLOAD.length} bytes, then ${FLOOD_MS} ms with ${WINDOW} in flight`);
    await measure('direct', await directPath(echoPort));
    await measure('gateway (direct)', await socksPath(plain.port, echoPort));
    if (viaDante) await measure('gateway + dante', await socksPath(viaDante.port, echoPort));
  } finally {
    await plain.gw.close(0);
    await viaDante?.gw.close(0);
    await dante?.close();
    echo.close();
  }
}

// Codec micro-benchmarks (`node --import tsx bench/codec.ts`, or run() from bench/run.ts).
// Figures go in notes, never in assertions.
import { pathToFileURL } from 'node:url';
import { Rep } from '../src/errors.js';
import { Cmd, Method } from '../src/protocol/constants.js';
import { ServerHandshake } from '../src/protocol/handshake.js';
import { decodeUdpDatagram, encodeGreeting, encodeReply, encodeRequest, encodeUdpDatagram } from '../src/protocol/messages.js';

const GREETING = encodeGreeting([Method.NO_AUTH]);
const REQUEST = encodeRequest(Cmd.CONNECT, { host: 'www.example.com', port: 443 });
const SPLIT = [REQUEST.subarray(0, 3), REQUEST.subarray(3, 9), REQUEST.subarray(9)];
const EMPTY = Buffer.alloc(0);
const BOUND4 = { host: '192.0.2.10', port: 54321 };
const BOUND6 = { host: '2001:db8::10', port: 54321 };
const DATAGRAM = encodeUdpDatagram({ host: 'dns.example.net', port: 53 }, Buffer.alloc(512, 1));
const DATAGRAM6 = encodeUdpDatagram({ host: '2001:db8::53', port: 53 }, Buffer.alloc(512, 1));

let sink = 0; // keeps results alive so the JIT cannot drop the work

function measure(name: string, fn: () => void, minMs = 300): void {
  for (let i = 0; i < 20_000; i++) fn(); // warm-up
  let ops = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(minMs) * 1_000_000n;
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 10_000; i++) fn();
    ops += 10_000;
    elapsed = process.hrtime.bigint() - start;
  }
  const ns = Number(elapsed) / ops;
  console.log(`codec  ${name.padEnd(52)} ${ns.toFixed(1).padStart(8)} ns/op`);
}

/** A fresh handshake up to the request, then the domain CONNECT request as `chunks`. */
function handshakeRequest(chunks: Buffer[]): void {
  const hs = new ServerHandshake();
  sink += hs.receive(GREETING).length;
  hs.selectMethod(Method.NO_AUTH);
  for (const c of chunks) sink += hs.receive(c).length;
  sink += hs.reply(Rep.SUCCEEDED, BOUND4).length;
}

export async function run(): Promise<void> {
  measure('ServerHandshake: greeting, domain CONNECT whole, reply', () => handshakeRequest([REQUEST]));
  measure('ServerHandshake: greeting, CONNECT in 3 chunks, reply', () => handshakeRequest(SPLIT));
  measure('ServerHandshake: greeting+CONNECT pipelined, drained', () => {
    const hs = new ServerHandshake();
    sink += hs.receive(Buffer.concat([GREETING, REQUEST])).length;
    hs.selectMethod(Method.NO_AUTH);
    sink += hs.receive(EMPTY).length;
  });
  measure('encodeReply (IPv4 bound)', () => (sink += encodeReply(Rep.SUCCEEDED, BOUND4).length));
  measure('encodeReply (IPv6 bound)', () => (sink += encodeReply(Rep.SUCCEEDED, BOUND6).length));
  measure('encodeReply (no bound)', () => (sink += encodeReply(Rep.GENERAL_FAILURE).length));
  measure('decodeUdpDatagram (domain, 512 B payload)', () => (sink += decodeUdpDatagram(DATAGRAM).payload.length));
  measure('decodeUdpDatagram (IPv6, 512 B payload)', () => (sink += decodeUdpDatagram(DATAGRAM6).payload.length));
  if (sink === -1) console.log('unreachable');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await run();

// What a lookup takes as the answer (RFC 5452): only a response from the server asked, from its
// address and port, with the query's ID and question; over TCP after a truncated one (RFC 7766);
// a malformed one is a clean failure. Each test's name server sends its forgery, then the answer.

import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import * as dnsPacket from 'dns-packet';
import { createResolver } from '../../src/dns/resolver.js';
import { NameNotResolvedError } from '../../src/errors.js';
import type { DnsResolver } from '../../src/dns/types.js';

const REAL = '192.0.2.1';
const FORGED = '198.51.100.66';

interface Asked {
  id: number;
  port: number;
  name: string;
  type: string;
}

type Reply = (q: dnsPacket.Packet, qq: dnsPacket.Question) => Buffer | undefined;

const response = (q: dnsPacket.Packet, qq: dnsPacket.Question, over: Partial<dnsPacket.Packet> = {}, address = REAL): Buffer =>
  dnsPacket.encode({
    id: q.id ?? 0,
    type: 'response',
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [qq],
    answers: qq.type === 'A' ? [{ type: 'A', name: qq.name, ttl: 60, class: 'IN', data: address }] : [],
    ...over,
  });

interface Server53 {
  port: number;
  asked: Asked[];
  tcpConnections: number;
  dns: DnsResolver;
}

/**
 * A name server on 127.0.0.1 (UDP and TCP on one port) and a resolver that asks it. `forge` answers
 * each UDP question (`send` from the server's port, `sendElsewhere` from another); `tcpReply` each TCP one.
 */
async function serve(
  t: { after(fn: () => unknown): void },
  forge: (q: dnsPacket.Packet, qq: dnsPacket.Question, send: (b: Buffer) => void, sendElsewhere: (b: Buffer) => void) => void,
  tcpReply?: Reply,
): Promise<Server53> {
  const asked: Asked[] = [];
  const state = { tcpConnections: 0 };
  // TCP first, then UDP on its port: one address and port for both, as a name server has.
  const tcp: Server = createServer((c) => {
    state.tcpConnections++;
    let buf = Buffer.alloc(0);
    const out: Buffer[] = [];
    c.on('error', () => {});
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        const answer = tcpReply?.(q, q.questions![0]!);
        if (!answer) continue;
        const length = Buffer.alloc(2);
        length.writeUInt16BE(answer.length);
        out.push(length, answer);
      }
      // Both questions' answers in one stream, cut inside the first length prefix and again
      // mid-message: the reader must reassemble.
      if (out.length >= 4) {
        const all = Buffer.concat(out.splice(0));
        c.write(all.subarray(0, 1));
        setTimeout(() => c.write(all.subarray(1, 40)), 20);
        setTimeout(() => c.write(all.subarray(40)), 40);
      }
    });
  });
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  const port = (tcp.address() as { port: number }).port;
  const udp: UdpSocket = createSocket('udp4');
  const elsewhere: UdpSocket = createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    const qq = q.questions![0]!;
    asked.push({ id: q.id ?? 0, port: rinfo.port, name: qq.name, type: qq.type });
    const send = (b: Buffer): void => void udp.send(b, rinfo.port, rinfo.address);
    forge(q, qq, send, (b) => void elsewhere.send(b, rinfo.port, rinfo.address));
  });
  udp.bind(port, '127.0.0.1');
  elsewhere.bind(0, '127.0.0.1');
  await Promise.all([once(udp, 'listening'), once(elsewhere, 'listening')]);
  const dns = createResolver({ servers: [`127.0.0.1:${port}`], cache_size: 100, negative_ttl: 30_000, timeout: 2_000, prefer: 'ipv4', hosts: {} });
  t.after(() => {
    dns.close();
    udp.close();
    elsewhere.close();
    tcp.close();
  });
  return {
    port,
    asked,
    get tcpConnections() {
      return state.tcpConnections;
    },
    dns,
  };
}

const FORGERIES: Record<string, (q: dnsPacket.Packet, qq: dnsPacket.Question) => Buffer> = {
  'another question': (q, qq) => response(q, { ...qq, name: 'elsewhere.test' }, { answers: [{ type: 'A', name: 'elsewhere.test', ttl: 60, class: 'IN', data: FORGED }] }),
  'another type': (q, qq) => response(q, { ...qq, type: qq.type === 'A' ? 'AAAA' : 'A' }, { answers: [{ type: 'A', name: qq.name, ttl: 60, class: 'IN', data: FORGED }] }),
  'another class': (q, qq) => response(q, { ...qq, class: 'CH' }, {}, FORGED),
  'another ID': (q, qq) => response({ ...q, id: ((q.id ?? 0) + 1) & 0xffff }, qq, {}, FORGED),
};

test('a forged answer (another question, type, class or ID) sent before the real one is ignored: the real answer is used', async (t) => {
  for (const [what, forgery] of Object.entries(FORGERIES)) {
    const { dns } = await serve(t, (q, qq, send) => {
      send(forgery(q, qq));
      setTimeout(() => send(response(q, qq)), 30);
    });
    assert.deepEqual(await dns.lookup('www.test'), [{ address: REAL, family: 4 }], what);
  }
});

test('an answer from another port of the server\'s address is ignored: the real answer is used', async (t) => {
  const { dns } = await serve(t, (q, qq, send, sendElsewhere) => {
    sendElsewhere(response(q, qq, {}, FORGED));
    setTimeout(() => send(response(q, qq)), 30);
  });
  assert.deepEqual(await dns.lookup('www.test'), [{ address: REAL, family: 4 }]);
});

test('query IDs are unpredictable (never repeated, not a constant step) and lookups do not all ask from one port', async (t) => {
  const server = await serve(t, (q, qq, send) => send(response(q, qq, { answers: [] })));
  for (let i = 0; i < 20; i++) await assert.rejects(server.dns.lookup(`n${i}.test`), NameNotResolvedError);
  const ids = server.asked.map((a) => a.id);
  // Random 16-bit IDs do meet by chance: two of 40 share one in about 1 lookup run of 85
  // (the birthday bound), three pairs in about one of 3 million. A counter or a fixed ID
  // repeats far more.
  assert.ok(new Set(ids).size >= ids.length - 2, `IDs repeat: ${ids.join(' ')}`);
  const steps = new Set(ids.slice(1).map((id, i) => (id - ids[i]! + 0x10000) & 0xffff));
  assert.ok(steps.size > 1, `IDs step by a constant: ${ids.join(' ')}`);
  const ports = new Set(server.asked.map((a) => a.port));
  assert.ok(ports.size >= 10, `20 lookups asked from ${ports.size} ports`);
});

test('a truncated answer (TC) is asked again over TCP: two answers on one connection, cut across segments, are read whole', async (t) => {
  const server = await serve(
    t,
    (q, qq, send) => send(response(q, qq, { flags: dnsPacket.TRUNCATED_RESPONSE, answers: [] })),
    (q, qq) =>
      response(q, qq, {
        answers:
          qq.type === 'A'
            ? Array.from({ length: 40 }, (_, i) => ({ type: 'A' as const, name: qq.name, ttl: 60, class: 'IN' as const, data: `10.0.0.${i + 1}` }))
            : [{ type: 'AAAA', name: qq.name, ttl: 60, class: 'IN', data: '2001:db8::1' }],
      }),
  );
  const addresses = await server.dns.lookup('big.test');
  assert.equal(addresses.filter((a) => a.family === 4).length, 40);
  assert.deepEqual(addresses.at(-1), { address: '2001:db8::1', family: 6 });
  assert.equal(server.tcpConnections, 1);
});

/** A response to `q` whose one answer's owner name is `name` (raw bytes, compression pointers allowed). */
function withOwner(q: dnsPacket.Packet, qq: dnsPacket.Question, owner: (at: number) => Buffer): Buffer {
  const head = response(q, qq, { answers: [] });
  const name = owner(head.length);
  const rr = Buffer.alloc(14);
  rr.writeUInt16BE(qq.type === 'A' ? 1 : 28, 0);
  rr.writeUInt16BE(1, 2); // IN
  rr.writeUInt32BE(60, 4);
  rr.writeUInt16BE(4, 8);
  rr.set([192, 0, 2, 1], 10);
  const out = Buffer.concat([head, name, rr]);
  out.writeUInt16BE(1, 6); // ANCOUNT
  return out;
}

const pointer = (to: number): Buffer => Buffer.from([0xc0 | (to >> 8), to & 0xff]);

const MANGLED: Record<string, (q: dnsPacket.Packet, qq: dnsPacket.Question) => Buffer> = {
  'a compression pointer to itself': (q, qq) => withOwner(q, qq, (at) => pointer(at)),
  'a compression pointer forward': (q, qq) => withOwner(q, qq, (at) => pointer(at + 20)),
  'a label of 64 bytes': (q, qq) => withOwner(q, qq, () => Buffer.concat([Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0])])),
  'a header cut short': (q) => Buffer.from([(q.id ?? 0) >> 8, (q.id ?? 0) & 0xff, 0x81]),
};

test('a malformed answer (pointer loop, forward pointer, long label, short header) fails the lookup cleanly within the timeout', { timeout: 20_000 }, async (t) => {
  for (const [what, mangled] of Object.entries(MANGLED)) {
    const { dns } = await serve(t, (q, qq, send) => send(mangled(q, qq)));
    const started = performance.now();
    await assert.rejects(dns.lookup('www.test'), (err: unknown) => err instanceof NameNotResolvedError, what);
    assert.ok(performance.now() - started < 3_000, what);
  }
});

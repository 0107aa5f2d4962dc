// A small authoritative-looking DNS server on 127.0.0.1 (real UDP packets via
// dns-packet) that counts the questions it receives per name and type.

import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import * as dnsPacket from 'dns-packet';
import type { DnsConfig } from '../../src/config/types.js';
import { createResolver } from '../../src/dns/resolver.js';
import type { DnsResolver } from '../../src/dns/types.js';

export interface DnsRecord {
  A?: string[];
  AAAA?: string[];
  ttl?: number; // seconds, default 60
  nxdomain?: boolean;
  servfail?: boolean | QueryType[]; // SERVFAIL (to questions of these types only, when a list)
  refused?: boolean;
  formerr?: boolean; // FORMERR: the server could not read the question
  truncated?: boolean; // TC bit set and no answers (a client should retry over TCP, which is not served)
  cname?: string; // answered as a CNAME to this name, followed by that name's records
  cnameTtl?: number; // seconds, the CNAME record's own TTL (default: ttl)
  silent?: boolean | QueryType[]; // never answers (questions of these types only, when a list)
  // A datagram that is no DNS message (2 bytes) goes to the asker: before the answer to the
  // first question for this name ('first'), or instead of every answer ('always').
  malformed?: 'first' | 'always';
  delay?: number; // ms between a question and its answer (every question: a slow link, not a slow recursion)
}

export type QueryType = 'A' | 'AAAA';

export interface DnsServer {
  host: '127.0.0.1' | '::1';
  port: number;
  /** Questions received for `name` (lower case, no trailing dot), of `type` or of any type. */
  queries(name: string, type?: QueryType): number;
  /** Replaces (or adds) the record of `name`. */
  set(name: string, record: DnsRecord): void;
  close(): Promise<void>;
}

// RFC 1035 §4.1.1 RCODE values.
const NOERROR = 0;
const SERVFAIL = 2;
const NXDOMAIN = 3;
const REFUSED = 5;
const FORMERR = 1;
const FLAG_TC = 1 << 9;
const FLAG_AA = 1 << 10;
const FLAG_RD = 1 << 8;
const FLAG_RA = 1 << 7;

const norm = (name: string): string => name.toLowerCase().replace(/\.$/, '');

export async function startDnsServer(records: Record<string, DnsRecord>, host: '127.0.0.1' | '::1' = '127.0.0.1'): Promise<DnsServer> {
  const table = new Map<string, DnsRecord>();
  for (const [name, rec] of Object.entries(records)) table.set(norm(name), rec);
  const counts = new Map<string, number>();

  const sock = createSocket(host === '::1' ? 'udp6' : 'udp4');
  let closed = false;
  sock.on('message', (msg, rinfo) => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return; // garbage: ignore, as a real server would
    }
    const q = query.questions?.[0];
    if (!q) return;
    const name = norm(q.name);
    const key = `${name} ${q.type}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const rec = table.get(name);
    if (rec?.silent === true || (Array.isArray(rec?.silent) && rec.silent.some((t) => t === q.type))) return;
    if (rec?.malformed === 'always' || (rec?.malformed === 'first' && counts.get(key) === 1)) sock.send(Buffer.from([0xff, 0xff]), rinfo.port, rinfo.address);
    if (rec?.malformed === 'always') return;
    const reply = dnsPacket.encode(answer(query, q, rec, table));
    if (rec?.delay === undefined) sock.send(reply, rinfo.port, rinfo.address);
    else setTimeout(() => !closed && sock.send(reply, rinfo.port, rinfo.address), rec.delay);
  });
  sock.bind(0, host);
  await once(sock, 'listening');

  return {
    host,
    port: sock.address().port,
    queries(name, type) {
      const n = norm(name);
      if (type) return counts.get(`${n} ${type}`) ?? 0;
      return (counts.get(`${n} A`) ?? 0) + (counts.get(`${n} AAAA`) ?? 0);
    },
    set(name, record) {
      table.set(norm(name), record);
    },
    close: () => {
      closed = true;
      return new Promise<void>((resolve) => sock.close(() => resolve()));
    },
  };
}

function answer(query: dnsPacket.Packet, q: dnsPacket.Question, rec: DnsRecord | undefined, table: Map<string, DnsRecord>): dnsPacket.Packet {
  let rcode = NOERROR;
  let flags = FLAG_AA | FLAG_RD | FLAG_RA;
  const answers: dnsPacket.Answer[] = [];
  // Follow CNAMEs (a bounded number of hops), as a recursive server puts the chain in one answer.
  let name = q.name;
  for (let hop = 0; rec?.cname !== undefined && hop < 8; hop++) {
    answers.push({ type: 'CNAME', name, ttl: rec.cnameTtl ?? rec.ttl ?? 60, class: 'IN', data: rec.cname });
    name = rec.cname;
    rec = table.get(norm(name));
  }
  if (!rec || rec.nxdomain) rcode = NXDOMAIN;
  else if (rec.servfail === true || (Array.isArray(rec.servfail) && rec.servfail.some((t) => t === q.type))) rcode = SERVFAIL;
  else if (rec.refused) rcode = REFUSED;
  else if (rec.formerr) rcode = FORMERR;
  else if (rec.truncated) flags |= FLAG_TC;
  else {
    const ttl = rec.ttl ?? 60;
    const list = q.type === 'A' ? rec.A : q.type === 'AAAA' ? rec.AAAA : undefined;
    for (const data of list ?? []) {
      if (q.type === 'A') answers.push({ type: 'A', name, ttl, class: 'IN', data });
      else answers.push({ type: 'AAAA', name, ttl, class: 'IN', data });
    }
  }
  return {
    id: query.id ?? 0,
    type: 'response',
    flags: flags | rcode,
    questions: [q],
    answers,
  };
}

/** A DnsServer with `records` and a resolver that asks only it (test defaults, `over` on top); both closed after the test. */
export async function resolverWithServer(
  t: { after(fn: () => unknown): void },
  records: Record<string, DnsRecord>,
  over: Partial<DnsConfig> = {},
): Promise<{ server: DnsServer; dns: DnsResolver }> {
  const { servers, dns } = await resolverWithServers(t, [records], over);
  return { server: servers[0]!, dns };
}

/** One DnsServer for each of `records`, and a resolver that asks them in that order; all closed after the test. */
export async function resolverWithServers<R extends ReadonlyArray<Record<string, DnsRecord>>>(
  t: { after(fn: () => unknown): void },
  records: readonly [...R],
  over: Partial<DnsConfig> = {},
): Promise<{ servers: { [K in keyof R]: DnsServer }; dns: DnsResolver }> {
  const servers: DnsServer[] = [];
  for (const r of records) {
    const server = await startDnsServer(r);
    t.after(() => server.close());
    servers.push(server);
  }
  const dns = createResolver({
    servers: servers.map((s) => `${s.host}:${s.port}`),
    cache_size: 100,
    negative_ttl: 30_000,
    timeout: 1_000,
    prefer: 'ipv4',
    hosts: {},
    ...over,
  });
  t.after(() => dns.close());
  return { servers: servers as { [K in keyof R]: DnsServer }, dns };
}

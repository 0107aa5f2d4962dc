// Where answers come from: the configured servers (A and AAAA with their
// TTLs, through c-ares) or the system resolver (getaddrinfo, so /etc/hosts
// and `localhost` work, but without TTLs). One adapter each; both tell an
// authoritative "does not exist" apart from a failure to find out.

import { lookup as systemLookup, Resolver } from 'node:dns/promises';
import { ConfigError, NameNotResolvedError } from '../errors.js';
import { Semaphore } from '../semaphore.js';
import type { DnsConfig } from '../config/types.js';
import type { ResolvedAddress } from './types.js';

/** A definite answer. Anything else (timeout, SERVFAIL, refused) rejects with NameNotResolvedError. */
export type Answer =
  // ttl in seconds; `partial` when one family failed transiently (its answer is unknown, not empty)
  | { kind: 'positive'; addresses: ResolvedAddress[]; ttl: number; partial?: boolean }
  | { kind: 'negative'; reason: string };

export interface Backend {
  /** `asked` is told the DNS questions sent (A + AAAA = 2 a server, 1 a getaddrinfo), for the `queries` counter. */
  query(name: string, asked?: (questions: number) => void): Promise<Answer>;
  cancel(): void;
}

/** getaddrinfo gives no TTL: answers from the system resolver live this long (before clamping). */
export const SYSTEM_TTL_SECONDS = 60;

// c-ares codes: ENOTFOUND is NXDOMAIN, ENODATA is NOERROR with no record of the type (RFC 2308 §2.2).
const NXDOMAIN = 'ENOTFOUND';
const NODATA = 'ENODATA';

const REASONS: Readonly<Record<string, string>> = {
  ETIMEOUT: 'resolver timeout',
  ETIMEDOUT: 'resolver timeout',
  ESERVFAIL: 'SERVFAIL',
  EREFUSED: 'query refused',
  ECONNREFUSED: 'resolver unreachable',
  EAI_AGAIN: 'temporary resolver failure',
  ECANCELLED: 'lookup cancelled',
};

const errCode = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | null)?.code;

function failure(name: string, err: unknown): NameNotResolvedError {
  if (err instanceof NameNotResolvedError) return err;
  const code = errCode(err);
  return new NameNotResolvedError(name, (code && REASONS[code]) ?? code ?? 'lookup failed', { cause: err });
}

/** Rejects with a timeout failure if `p` has not settled after `ms`: a last guard, c-ares has its own. */
function withDeadline<T>(name: string, p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new NameNotResolvedError(name, 'resolver timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * Answers that blame the server, not the name (c-ares' own list): the other servers are asked.
 * Node runs c-ares with ARES_FLAG_NOCHECKRESP, so its channel hands these back from the first
 * server that gives one instead of trying the next, as it does for a silent or closed one.
 * ECONNREFUSED too: a truncated answer (TC) is asked again over TCP, and a refused TCP
 * connection used up the one try the next server had.
 */
const SERVER_AT_FAULT = new Set(['ESERVFAIL', 'EREFUSED', 'ENOTIMP', 'ECONNREFUSED']);

const serverAtFault = (err: unknown): boolean =>
  err instanceof NameNotResolvedError && SERVER_AT_FAULT.has(errCode(err.cause) ?? '');

export function serverBackend(cfg: DnsConfig, servers: string[]): Backend {
  // One try per server: the deadline below and the caller's retry on the next request handle loss.
  const channel = (list: string[]): Resolver => {
    const resolver = new Resolver({ timeout: cfg.timeout, tries: 1 });
    try {
      resolver.setServers(list);
    } catch (err) {
      throw new ConfigError([`dns.servers: ${(err as Error).message}`]);
    }
    return resolver;
  };
  // All servers in one channel (c-ares moves past a silent or unreachable one, and remembers
  // it); one channel per server to ask each in turn after a SERVFAIL or REFUSED.
  const all = channel(servers);
  const each = servers.length > 1 ? servers.map((s) => channel([s])) : [];
  // Node timers hold at most 2^31-1 ms; a longer one would fire at once.
  const deadline = Math.min(cfg.timeout * servers.length + 1000, 2 ** 31 - 1);
  const oneDeadline = Math.min(cfg.timeout + 1000, 2 ** 31 - 1);

  async function ask(resolver: Resolver, name: string, ms: number, asked?: (questions: number) => void): Promise<Answer> {
    asked?.(2);
    const [v4, v6] = await withDeadline(
      name,
      Promise.allSettled([resolver.resolve4(name, { ttl: true }), resolver.resolve6(name, { ttl: true })]),
      ms,
    );
    const addresses: ResolvedAddress[] = [];
    let ttl = Infinity;
    const errors: unknown[] = [];
    for (const [result, family] of [[v4, 4], [v6, 6]] as const) {
      if (result.status === 'rejected') errors.push(result.reason);
      else
        for (const rr of result.value) {
          addresses.push({ address: rr.address, family });
          ttl = Math.min(ttl, rr.ttl);
        }
    }
    const codes = errors.map(errCode);
    if (addresses.length > 0) {
      const partial = codes.some((c) => c !== NXDOMAIN && c !== NODATA);
      return { kind: 'positive', addresses, ttl, partial };
    }
    // NXDOMAIN is about the name, whatever the type; otherwise every type must be NODATA.
    if (codes.includes(NXDOMAIN) && codes.every((c) => c === NXDOMAIN || c === NODATA))
      return { kind: 'negative', reason: 'NXDOMAIN' };
    if (codes.every((c) => c === NODATA)) return { kind: 'negative', reason: 'no address records' };
    throw failure(name, errors.find((e) => errCode(e) !== NXDOMAIN && errCode(e) !== NODATA));
  }

  async function query(name: string, asked?: (questions: number) => void): Promise<Answer> {
    try {
      return await ask(all, name, deadline, asked);
    } catch (err) {
      if (!serverAtFault(err)) throw err;
      // Which server failed is not known: each is asked in order, the first definite answer wins.
      for (const one of each) {
        try {
          return await ask(one, name, oneDeadline, asked);
        } catch {
          // this one failed too (or is the one that did): the next
        }
      }
      throw err;
    }
  }

  return {
    query,
    cancel: () => {
      all.cancel();
      for (const one of each) one.cancel();
    },
  };
}

/**
 * getaddrinfo calls running at once, for the whole process: half of libuv's pool (4 threads),
 * which scrypt (password checks) and file reads need too. A call cannot be cancelled, and one
 * whose name server never answers holds its thread for the system resolver's own timeouts:
 * unbounded, a few such names a second took every thread.
 */
const SYSTEM_LOOKUP_SLOTS = 2;
const systemLookupSlots = new Semaphore(SYSTEM_LOOKUP_SLOTS);

type SystemAnswer = { address: string; family: number }[];
/** getaddrinfo as node:dns/promises offers it (`all`, `verbatim`). */
export type SystemLookup = (name: string, opts: { all: true; verbatim: true }) => Promise<SystemAnswer>;

/** Why a lookup was not made: its deadline passed while it waited for a slot (nobody sees it). */
const NOT_WAITED_FOR = new Error('the lookup was no longer waited for');

/** `lookup`: getaddrinfo, or a stand-in for a test (a real one cannot be made to hang without a network name server). */
export function systemBackend(cfg: DnsConfig, lookup: SystemLookup = systemLookup): Backend {
  async function query(name: string, asked?: (questions: number) => void): Promise<Answer> {
    asked?.(1);
    let list: SystemAnswer;
    try {
      // getaddrinfo runs on the libuv pool and cannot be cancelled: the deadline only stops the
      // wait, and a lookup still waiting for a slot when it passes never runs.
      let waiting = true;
      const inTurn = systemLookupSlots.run(() => (waiting ? lookup(name, { all: true, verbatim: true }) : Promise.reject(NOT_WAITED_FOR)));
      list = await withDeadline(name, inTurn, cfg.timeout).finally(() => (waiting = false));
    } catch (err) {
      const code = errCode(err);
      if (code === NXDOMAIN) return { kind: 'negative', reason: 'NXDOMAIN' };
      if (code === NODATA) return { kind: 'negative', reason: 'no address records' };
      throw failure(name, err);
    }
    const seen = new Set<string>();
    const addresses: ResolvedAddress[] = [];
    for (const { address, family } of list) {
      if (seen.has(address) || (family !== 4 && family !== 6)) continue;
      seen.add(address);
      addresses.push({ address, family });
    }
    if (addresses.length === 0) return { kind: 'negative', reason: 'no address records' };
    return { kind: 'positive', addresses, ttl: SYSTEM_TTL_SECONDS };
  }
  return { query, cancel: () => {} };
}

// Where answers come from: the configured servers (A and AAAA with their
// TTLs, through c-ares) or the system resolver (getaddrinfo, so /etc/hosts
// and `localhost` work, but without TTLs). One adapter each; both tell an
// authoritative "does not exist" apart from a failure to find out.

import { lookup as systemLookup } from 'node:dns/promises';
import { descriptorFree } from '../descriptors.js';
import { NameNotResolvedError } from '../errors.js';
import { Channel, ownChannel } from './channel.js';
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
  EBADRESP: 'malformed answer',
  ENOTIMP: 'NOTIMP',
  EFORMERR: 'FORMERR',
};

const errCode = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | null)?.code;

function failure(name: string, err: unknown): NameNotResolvedError {
  if (err instanceof NameNotResolvedError) return err;
  const code = errCode(err);
  return new NameNotResolvedError(name, (code && REASONS[code]) ?? code ?? 'lookup failed', { cause: err });
}

/**
 * RFC 2181 §8: a TTL is 31 bits; one with the top bit set is read as 0. c-ares hands the 32 bits
 * on as they came, and 2^32 - 1 s kept an answer for 136 years (without max_ttl).
 */
const answerTtl = (seconds: number): number => (seconds >= 2 ** 31 ? 0 : seconds);

/** Rejects with a timeout failure if `p` has not settled after `ms`: the lookup's own bound. */
function withDeadline<T>(name: string, p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new NameNotResolvedError(name, 'resolver timeout')), Math.max(0, ms));
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
 * connection used up the one try the next server had. And FORMERR, which c-ares does not list:
 * that server could not read a plain question, which another may (Go's resolver moves on too).
 */
const SERVER_AT_FAULT = new Set(['ESERVFAIL', 'EREFUSED', 'ENOTIMP', 'ECONNREFUSED', 'EFORMERR']);

/**
 * c-ares read a datagram from the server's address and port that is no DNS message it can
 * parse (its ID and question unread): it ends every question out on that socket, on the first
 * one. Anyone who can send from that address (a forger who guessed the port, without the ID)
 * could fail a lookup with one datagram, so the question is asked again, of each server.
 */
const MALFORMED = 'EBADRESP';

/** A c-ares code that blames the server the question went to, not the name. */
const blamesServer = (code: string | undefined): boolean => code !== undefined && (SERVER_AT_FAULT.has(code) || code === MALFORMED);

/** The c-ares code behind a failed lookup. */
const causeCode = (err: unknown): string | undefined => (err instanceof NameNotResolvedError ? errCode(err.cause) : undefined);

/** An answer, and whether a family missing from it was the server's fault (SERVFAIL, REFUSED, NOTIMP, malformed). */
type Asked = Answer & { blamed?: boolean };

/** Asks of all servers in one lookup at most: a backstop only (tries last 250 ms to 5 s, so the deadline comes first). */
const MAX_ASKS = 10_000;

/** c-ares gave up on every server without an answer: worth asking again while the lookup has time. */
const cAresTimedOut = (err: unknown): boolean => err instanceof NameNotResolvedError && errCode(err.cause) === 'ETIMEOUT';

/**
 * The c-ares timeout that ends a try within `share` ms: Node checks c-ares' expiries on a tick of
 * min(timeout, 1 s) (src/cares_wrap.cc, ChannelWrap::StartTimer), so a try ends up to a tick late.
 * c-ares itself keeps a try between 250 ms and 5 s.
 */
function tryTimeout(share: number): number {
  return share <= 2000 ? Math.max(1, Math.floor(share / 2)) : share - 1000;
}

/**
 * `dns.timeout` bounds the whole lookup, every server included: our timer, not c-ares', ends it.
 * c-ares alone cannot: it caps a try at 5 s, cuts it to 5x a server's recent latency (250 ms at
 * least) once that server has answered, and Node checks its expiries on a tick of up to 1 s.
 */
export function serverBackend(cfg: DnsConfig, servers: string[]): Backend {
  // Each server gets an equal share of the timeout before the next is asked, so a silent first
  // one leaves the others time to answer; one try a server per ask, asked again while time remains.
  const perTry = tryTimeout(Math.floor(cfg.timeout / servers.length));
  // All servers in one channel (c-ares moves past a silent or unreachable one, and remembers
  // it); one channel per server to ask each in turn after a SERVFAIL or REFUSED.
  const all = new Channel(servers, perTry);
  const each = servers.length > 1 ? servers.map((s) => new Channel([s], perTry)) : [];
  /** The lookups' own channels in use now: ended with the shared ones when the resolver closes. */
  const owned = new Set<Channel>();

  /** `deadline` is a performance.now() time: the end of the whole lookup. */
  async function ask(channel: Channel, name: string, deadline: number, asked?: (questions: number) => void): Promise<Asked> {
    const questions = channel.ask(name);
    // A full channel fails the lookup (not cached), as a silent server would, without waiting.
    if (questions === undefined) throw new NameNotResolvedError(name, 'too many lookups in flight');
    asked?.(2);
    // Each family on its own deadline: one that answered in time is used when the other has not.
    // A query still out then ends on c-ares' own schedule (within about one timeout);
    // cancel() would end every lookup on the channel, not just this one.
    const ms = deadline - performance.now();
    const [v4, v6] = await Promise.allSettled([withDeadline(name, questions[0], ms), withDeadline(name, questions[1], ms)]);
    const addresses: ResolvedAddress[] = [];
    let ttl = Infinity;
    const errors: unknown[] = [];
    for (const [result, family] of [[v4, 4], [v6, 6]] as const) {
      if (result.status === 'rejected') errors.push(result.reason);
      else
        for (const rr of result.value) {
          addresses.push({ address: rr.address, family });
          ttl = Math.min(ttl, answerTtl(rr.ttl));
        }
    }
    const codes = errors.map(errCode);
    if (addresses.length > 0) {
      const partial = codes.some((c) => c !== NXDOMAIN && c !== NODATA);
      const blamed = codes.some(blamesServer);
      return { kind: 'positive', addresses, ttl, partial, blamed };
    }
    // NXDOMAIN is about the name, whatever the type; otherwise every type must be NODATA.
    if (codes.includes(NXDOMAIN) && codes.every((c) => c === NXDOMAIN || c === NODATA))
      return { kind: 'negative', reason: 'NXDOMAIN' };
    if (codes.every((c) => c === NODATA)) return { kind: 'negative', reason: 'no address records' };
    throw failure(name, errors.find((e) => errCode(e) !== NXDOMAIN && errCode(e) !== NODATA));
  }

  /**
   * Asks every server until an answer, a failure that is not a timeout, or the deadline. After
   * a first round on the shared channel times out, the next rounds go to a channel of this
   * lookup's own, whose tries c-ares does not cut short (see ownChannel).
   */
  async function askAll(name: string, deadline: number, asked?: (questions: number) => void): Promise<Asked> {
    let own: ReturnType<typeof ownChannel>;
    try {
      // A c-ares timeout comes 250 ms after the ask at the soonest, so the deadline ends this loop;
      // the count bounds it too, should a timeout ever come back sooner.
      for (let round = 1; ; round++) {
        try {
          return await ask(own?.channel ?? all, name, deadline, asked);
        } catch (err) {
          if (!cAresTimedOut(err) || performance.now() >= deadline || round >= MAX_ASKS) throw err;
          own ??= ownChannel(servers, perTry);
          if (own) owned.add(own.channel);
        }
      }
    } finally {
      if (own) {
        owned.delete(own.channel);
        own.release();
      }
    }
  }

  async function query(name: string, asked?: (questions: number) => void): Promise<Answer> {
    const deadline = performance.now() + cfg.timeout;
    let answer: Asked;
    try {
      answer = await askAll(name, deadline, asked);
    } catch (err) {
      return await failOver(name, deadline, err, asked);
    }
    if (!answer.blamed) return answer;
    // One family failed by a server (a SERVFAIL for A, say) while the other answered: the
    // others are asked for the whole answer, as when both fail; the half is used if none has it.
    // Kept as it came, a name with an IPv4-only target had only its IPv6 address for negative_ttl.
    return (await inTurn(each, name, deadline, asked, (a) => a.kind === 'positive' && !a.partial)) ?? answer;
  }

  /** After `err` from asking every server: each is asked in turn when a server is to blame, else `err`. */
  async function failOver(name: string, deadline: number, err: unknown, asked?: (questions: number) => void): Promise<Answer> {
    const code = causeCode(err);
    if (!blamesServer(code)) throw err;
    // Which server failed is not known: each is asked in order, the first definite answer wins.
    // The only server is asked once more after a malformed datagram; after a SERVFAIL, not.
    const channels = each.length > 0 ? each : code === MALFORMED ? [all] : [];
    const answer = await inTurn(channels, name, deadline, asked, () => true);
    if (answer === undefined) throw err;
    return answer;
  }

  /** Asks `channels` one after another until the deadline: the first answer `good` takes, else undefined. */
  async function inTurn(channels: readonly Channel[], name: string, deadline: number, asked: ((questions: number) => void) | undefined, good: (a: Asked) => boolean): Promise<Asked | undefined> {
    for (const one of channels) {
      if (performance.now() >= deadline) break;
      try {
        const answer = await ask(one, name, deadline, asked);
        if (good(answer)) return answer;
      } catch {
        // this one failed too (or is the one that did): the next
      }
    }
    return undefined;
  }

  return {
    query,
    cancel: () => {
      all.cancel();
      for (const one of owned) one.cancel();
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
      // glibc's getaddrinfo says EAI_NONAME ("not found") when it could not open /etc/hosts or a
      // socket for want of a descriptor: no answer then, which cached would refuse the name for
      // negative_ttl after descriptors are free again.
      if ((code === NXDOMAIN || code === NODATA) && !descriptorFree()) throw new NameNotResolvedError(name, 'out of file descriptors', { cause: err });
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

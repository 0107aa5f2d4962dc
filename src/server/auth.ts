// Client authentication: RFC 1928 §3 method selection and RFC 1929 username/password.
// Every verification does the same work whoever asks: plain passwords are compared as
// SHA-256 digests (equal length, so timingSafeEqual leaks nothing about the length), and
// when users have scrypt hashes, every attempt (unknown users included) runs one scrypt of
// each cost they use: the user's own hash at its cost, a decoy at the others.
// Credentials that passed are remembered (as a keyed MAC, never as text) for a while, so a
// crawler opening hundreds of connections a second pays scrypt once, not per connection;
// a wrong password always pays the full price.

import { createHash, createHmac, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { parsePasswordHash, scryptMaxmem, type ScryptHash } from '../config/password-hash.js';
import type { AuthConfig } from '../config/types.js';
import { Method } from '../protocol/constants.js';
import { MALFORMED_USERNAME, splitSessionUser, type SessionParams } from '../protocol/username.js';
import { hashLimited, LoginThrottle, TOO_MANY_FAILURES, type Gone, type ThrottleLimits, type ThrottleOptions } from './login-throttle.js';

export interface AuthResult {
  ok: boolean;
  user?: string;
  /** The `session` parameter, when given. */
  sessionKey?: string;
  /** Every `-KEY-VALUE` of the username (`session` and `lifetime` included); empty when none. */
  params?: SessionParams;
  /** Refused unchecked: the client's address is blocked for too many failed logins (`limits.auth_failures`). */
  blocked?: true;
  /** Refused whatever the password: the `-KEY-VALUE` part of the username does not parse. */
  malformed?: true;
}

/** What the access log and a 407 say of a refused login. */
export function refusalReason(r: AuthResult): string {
  if (r.blocked) return TOO_MANY_FAILURES;
  return r.malformed ? MALFORMED_USERNAME : 'authentication failed';
}

export interface Authenticator {
  /** Method to select from the client's offered list: USERPASS when auth configured, NO_AUTH when no auth or allow_anonymous and offered; NO_ACCEPTABLE otherwise. */
  chooseMethod(offered: readonly number[]): number;
  /**
   * RFC 1929 check; `alice-session-XYZ-country-de` authenticates as alice with its parameters. Timing-safe.
   * `source` (the client IP) is throttled after failed logins (`limits.auth_failures`).
   * A client `gone` before its password is hashed is refused without the hash.
   */
  verify(username: string, password: string, source?: string, gone?: Gone): Promise<AuthResult>;
}

/** Parameters of new hashes: N=2^15 takes ~50-100 ms and 32 MiB, per OWASP's scrypt floor. */
const NEW_HASH = { N: 2 ** 15, r: 8, p: 1, saltBytes: 16, keyBytes: 32 } as const;

/** `scrypt$N$r$p$saltB64$hashB64`, the `password_hash` format of the config. */
export async function hashPassword(plain: string): Promise<string> {
  const salt = randomBytes(NEW_HASH.saltBytes);
  const hash = await scryptAsync(Buffer.from(plain, 'utf8'), salt, NEW_HASH.keyBytes, NEW_HASH);
  return `scrypt$${NEW_HASH.N}$${NEW_HASH.r}$${NEW_HASH.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Verified credentials remembered: bounded in count and in age. */
const VERIFIED_MAX = 10_000;
const VERIFIED_TTL_MS = 10 * 60_000;

interface Credential {
  /** SHA-256 of the plain password; a random digest nobody can match for hashed users. */
  digest: Buffer;
  scrypt?: ScryptHash;
}

export interface AuthenticatorOptions extends ThrottleOptions {
  /** `limits.auth_failures`; without it failures are not counted. */
  limits?: ThrottleLimits;
  /** Counts failures instead of a new throttle made from `limits` (one carried over a reload). */
  throttle?: LoginThrottle;
}

export function createAuthenticator(auth: AuthConfig | undefined, opts: AuthenticatorOptions = {}): Authenticator {
  if (!auth) {
    return {
      chooseMethod: (offered) => (offered.includes(Method.NO_AUTH) ? Method.NO_AUTH : Method.NO_ACCEPTABLE),
      verify: async () => ({ ok: false }),
    };
  }
  const users = new Map<string, Credential>();
  for (const u of auth.users) users.set(u.username, credentialOf(u.password, u.password_hash));
  // One decoy per scrypt cost among the hashes. A single decoy at the first hash's cost let a
  // wrong password for a user with a costlier hash take longer than one for a name nobody
  // has, which told a guesser the user exists; every attempt now runs each cost once.
  const decoys = new Map<string, ScryptHash>();
  for (const c of users.values()) {
    if (c.scrypt && !decoys.has(costOf(c.scrypt))) decoys.set(costOf(c.scrypt), { ...c.scrypt, salt: randomBytes(16), hash: randomBytes(c.scrypt.hash.length) });
  }
  const unknown: Credential = { digest: randomBytes(32) };
  const allowAnonymous = auth.allow_anonymous;
  // A fresh key per authenticator: the remembered MACs mean nothing outside this process.
  const macKey = randomBytes(32);
  const verified = new LRUCache<string, true>({ max: VERIFIED_MAX, ttl: VERIFIED_TTL_MS });
  const throttle = opts.throttle ?? (opts.limits && new LoginThrottle(opts.limits, opts));

  return {
    chooseMethod(offered) {
      if (offered.includes(Method.USERPASS)) return Method.USERPASS;
      if (allowAnonymous && offered.includes(Method.NO_AUTH)) return Method.NO_AUTH;
      return Method.NO_ACCEPTABLE;
    },
    async verify(username, password, source, gone) {
      const split = splitSessionUser(username);
      // A malformed username is still checked, as the user before its first "-": its answer
      // takes as long as a wrong password's, and only a wrong password counts towards
      // auth_failures. A crawler's bad session id is no guess, and must not block its address.
      const name = split?.user ?? userPart(username);
      const ok = throttle && source !== undefined ? await throttle.guard(source, () => check(name, password, gone), gone) : (await check(name, password, gone)) === true;
      if (ok === 'blocked') return { ok: false, blocked: true };
      // Said after the check, so it answers no sooner; a name without "-" is no malformed session.
      if (!split && username.includes('-')) return { ok: false, malformed: true };
      if (!ok || !split) return { ok: false };
      const { user, sessionKey, params } = split;
      return sessionKey === undefined ? { ok: true, user, params } : { ok: true, user, sessionKey, params };
    },
  };

  /** Undefined when the client was gone before its hash could run. */
  async function check(user: string, password: string, gone: Gone | undefined): Promise<boolean | undefined> {
    // Length-prefixed, so no (user, password) pair can collide with another.
    const mac = createHmac('sha256', macKey).update(`${user.length}:${user}${password}`).digest('base64');
    if (verified.get(mac)) return true;
    const known = users.get(user);
    const cred = known ?? unknown;
    const secret = Buffer.from(password, 'utf8');
    // Both comparisons always run; `&&` would skip the second and show in the timing.
    const plainOk = timingSafeEqual(sha256(secret), cred.digest);
    let hashOk = false;
    if (decoys.size > 0) {
      // One hashing slot for the whole attempt: its hashes run one after another.
      const matched = await hashLimited(() => hashEveryCost(secret, cred.scrypt), gone);
      if (matched === undefined) return undefined;
      hashOk = matched;
    }
    const ok = known !== undefined && (cred.scrypt ? hashOk : plainOk);
    if (ok) verified.set(mac, true);
    return ok;
  }

  /** Runs one scrypt per cost in use: `own` at its own cost, a decoy at each other; true when `own` matched. */
  async function hashEveryCost(secret: Buffer, own: ScryptHash | undefined): Promise<boolean> {
    let matched = false;
    for (const [cost, decoy] of decoys) {
      const target = own && costOf(own) === cost ? own : decoy;
      const key = await scryptAsync(secret, target.salt, target.hash.length, target);
      if (target === own) matched = timingSafeEqual(key, own.hash);
    }
    return matched;
  }
}

/** The user a username names, parameters or not: what comes before its first "-". */
function userPart(username: string): string {
  const dash = username.indexOf('-');
  return dash === -1 ? username : username.slice(0, dash);
}

function credentialOf(password: string | undefined, passwordHash: string | undefined): Credential {
  if (password !== undefined) return { digest: sha256(Buffer.from(password, 'utf8')) };
  const parsed = parsePasswordHash(passwordHash ?? '');
  // The loader already refused malformed hashes; a bad one here can only fail closed.
  if (typeof parsed === 'string') throw new RangeError(`invalid password_hash: ${parsed}`);
  return { digest: randomBytes(32), scrypt: parsed };
}

/** What a hash costs to check: two hashes with the same take as long. */
function costOf(h: ScryptHash): string {
  return `${h.N}$${h.r}$${h.p}$${h.hash.length}`;
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function scryptAsync(secret: Buffer, salt: Buffer, keylen: number, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: scryptMaxmem(params) };
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

// Checks the schema cannot express: address syntax, names that must resolve, duplicates and
// the open-proxy safety rule. Upstream/rule cross-references live in semantic-routing.ts.

import { isIP } from 'node:net';
import { DURATION_PATTERN, MAX_TIMER_MS, parseDuration } from './duration.js';
import { dialHostProblem, isLoopback, parseHostPort, withoutCredentials } from './net.js';
import { HASH_SHAPE, parsePasswordHash } from './password-hash.js';
import { parseRate, RATE_PATTERN } from './rate.js';
import { parseCidr } from './cidr.js';
import { parseIp, type ParsedIp } from './ip.js';
import { deadHostsName } from './domains.js';
import { EGRESS_NAMES } from './types.js';
import { problem, type ConfigPath, type Issue } from './positions.js';
import { entries, list, obj, str, type Obj } from './raw.js';
import { checkRouting } from './semantic-routing.js';

/**
 * Every semantic problem of `raw` (defaults already applied by the schema pass). `listening`:
 * on a reload, the listeners running, which the open-proxy rule holds to as well.
 */
export function checkSemantics(raw: unknown, listening: readonly { host: string }[] = []): Issue[] {
  const root = obj(raw);
  if (!root) return [];
  const out: Issue[] = [];
  checkListen(root, out);
  checkOpenProxy(root, out, listening);
  checkAuth(root, out);
  checkDns(root, out);
  checkDurations(root, out);
  checkIpField(obj(root['udp'])?.['advertise'], ['udp', 'advertise'], out);
  checkIpField(obj(root['metrics'])?.['host'], ['metrics', 'host'], out);
  checkApiToken(obj(root['metrics'])?.['api_token'], out);
  checkNetworks(root, out);
  checkUpstreamHosts(root, out);
  checkRouting(root, out);
  return out;
}

/** The schema's minLength for metrics.api_token. */
const API_TOKEN_MIN = 16;

/**
 * The schema counts the token as written; the API compares it without the whitespace around
 * it (observe/http.ts), so that is what must be long enough. Its text is never quoted back.
 */
function checkApiToken(value: unknown, out: Issue[]): void {
  const text = str(value);
  const token = text?.trim();
  // A token shorter as written is the schema's to report (minLength).
  if (text !== undefined && token !== undefined && text.length >= API_TOKEN_MIN && token.length < API_TOKEN_MIN) {
    out.push(problem(['metrics', 'api_token'], `${API_TOKEN_MIN} characters at least, not counting the whitespace around it (it has ${token.length})`));
  }
}

function checkIpField(value: unknown, path: ConfigPath, out: Issue[]): void {
  const text = str(value);
  if (text !== undefined && isIP(text) === 0) {
    out.push(problem(path, `"${text}" is not an IPv4 or IPv6 address literal`));
  }
}

/** HTTP Basic splits user-id and password at the first ":" (RFC 7617 §2): a username holding one cannot log in. */
const BASIC_COLON = 'contains ":", which HTTP Basic auth cannot carry in a username (RFC 7617 §2)';

/**
 * An upstream's host is dialed at every request: one that never could be is a config error, not a string of failures.
 * Nor may an http upstream's TLS settings be ones that cannot work.
 */
function checkUpstreamHosts(root: Obj, out: Issue[]): void {
  for (const [name, u] of entries(root['upstreams'])) {
    const host = str(obj(u)?.['host']);
    const bad = host === undefined || host === '' ? undefined : dialHostProblem(host);
    if (bad !== undefined) out.push(problem(['upstreams', name, 'host'], bad));
    // The proxy would refuse every login.
    const username = str(obj(u)?.['username']);
    if (str(obj(u)?.['type']) === 'http' && username?.includes(':')) out.push(problem(['upstreams', name, 'username'], BASIC_COLON));
    if (str(obj(u)?.['type']) === 'http') checkUpstreamTls(name, obj(u) ?? {}, out);
  }
}

function checkUpstreamTls(name: string, u: Obj, out: Issue[]): void {
  // The name sent in SNI and checked against the certificate: a name as a host is, never a URL.
  const servername = str(u['servername']);
  const bad = servername === undefined ? undefined : dialHostProblem(servername);
  if (bad !== undefined) out.push(problem(['upstreams', name, 'servername'], bad));
  // A CA file or a server name shows TLS was meant: without `tls: true` both would be
  // ignored, and the proxy asked in plain text, its password in every request.
  if (u['tls'] === true) return;
  for (const key of ['ca', 'servername']) {
    if (u[key] !== undefined) out.push(problem(['upstreams', name, key], TLS_ONLY));
  }
}

const TLS_ONLY = 'applies only with tls: true; without it the proxy is spoken to in plain text, credentials included';

/** CIDR lists outside the rules: trusted PROXY protocol peers and the egress guard. */
function checkNetworks(root: Obj, out: Issue[]): void {
  const cidr = (value: unknown, path: ConfigPath, names: readonly string[]): void => {
    const text = str(value);
    if (text === undefined || names.includes(text)) return;
    const parsed = parseCidr(text);
    if (typeof parsed === 'string') out.push(problem(path, names.length > 0 ? `${parsed} (or one of ${names.join(', ')})` : parsed));
  };
  list(root['listen']).forEach((entry, i) => {
    list(obj(obj(entry)?.['proxy_protocol'])?.['trusted']).forEach((t, j) => cidr(t, ['listen', i, 'proxy_protocol', 'trusted', j], []));
  });
  list(obj(root['egress'])?.['deny']).forEach((d, j) => cidr(d, ['egress', 'deny', j], EGRESS_NAMES));
}

/** One socket the gateway binds: where the config names it, for the problem's position. */
interface Bound {
  host: string;
  port: number;
  at: (string | number)[];
}

/**
 * Two binds on one port that the kernel refuses together (EADDRINUSE at start): the same
 * address; a wildcard and an address of its family; `::` (dual-stack in node) and anything.
 * Addresses are compared as numbers: `0:0::1` is ::1, and an IPv4-mapped address binds the
 * IPv4 one it holds (::ffff:0.0.0.0 the IPv4 wildcard).
 */
function clash(a: Bound, b: Bound): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  const x = parseIp(a.host);
  const y = parseIp(b.host);
  if (!x || !y) return a.host === b.host;
  if (isAny6(x) || isAny6(y)) return true;
  if (x.v === 4 && y.v === 4) return x.n === y.n || x.n === 0 || y.n === 0;
  // A zone (fe80::1%eth0) scopes a link-local address: the same address on two links is two.
  return x.v === 6 && y.v === 6 && x.w.every((word, i) => word === y.w[i]) && zone(a.host) === zone(b.host);
}

/**
 * Dante and nginx bind :: IPv6-only, so their users list 0.0.0.0 beside it on one port; here
 * :: is dual-stack (node's default) and already serves IPv4 clients, which the bare clash
 * does not tell them.
 */
function dualStackHint(a: Bound, b: Bound): string {
  const x = parseIp(a.host);
  const y = parseIp(b.host);
  if (!x || !y || x.v === y.v) return '';
  return isAny6(x) || isAny6(y) ? ': "::" takes IPv4 clients as well (dual-stack), so list it alone for both families' : '';
}

function isAny6(ip: ParsedIp): boolean {
  return ip.v === 6 && ip.w.every((word) => word === 0);
}

function zone(host: string): string {
  const at = host.indexOf('%');
  return at === -1 ? '' : host.slice(at);
}

function checkListen(root: Obj, out: Issue[]): void {
  const bound: Bound[] = [];
  const bind = (b: Bound, what: string): void => {
    const other = bound.find((x) => clash(x, b));
    if (other) out.push(problem(b.at, `${what} ${b.host} port ${b.port} cannot be bound beside ${other.at.join('.').replace(/\.(\d+)/g, '[$1]')} (${other.host} port ${other.port})${dualStackHint(other, b)}`));
    bound.push(b);
  };
  list(root['listen']).forEach((entry, i) => {
    const host = str(obj(entry)?.['host']);
    if (host === undefined) return;
    if (isIP(host) === 0) {
      out.push(problem(['listen', i, 'host'], `"${host}" is not an IPv4 or IPv6 address literal (use "0.0.0.0" or "::" for all interfaces)`));
      return;
    }
    const port = obj(entry)?.['port'];
    if (typeof port === 'number') bind({ host, port, at: ['listen', i] }, 'listener');
  });
  // The admin listener, with its schema defaults (127.0.0.1, 9180) when a key is left out.
  const metrics = obj(root['metrics']);
  if (metrics) {
    const host = str(metrics['host']) ?? '127.0.0.1';
    const port = metrics['port'] ?? 9180;
    if (isIP(host) !== 0 && typeof port === 'number') bind({ host, port, at: ['metrics'] }, 'admin listener');
  }
}

/**
 * PRODUCT.md "Safety defaults": no accidental open proxy on a reachable address, whether the
 * file's `listen` names it or (on a reload) the gateway already listens there.
 */
function checkOpenProxy(root: Obj, out: Issue[], listening: readonly { host: string }[]): void {
  if (root['allow_open_proxy'] === true) return;
  const auth = obj(root['auth']);
  const anonymous = auth !== undefined && auth['allow_anonymous'] === true;
  if (auth && !anonymous) return;
  const why = anonymous ? 'with auth.allow_anonymous: true' : 'without auth';
  const advice =
    'anyone who can reach it could use this gateway as an open proxy. ' +
    'Add an "auth" section with users (and allow_anonymous: false), or set "allow_open_proxy: true" at the top level if an open proxy is intended';
  let named = false;
  list(root['listen']).forEach((entry, i) => {
    const host = str(obj(entry)?.['host']);
    if (host === undefined || isIP(host) === 0 || isLoopback(host)) return;
    named = true;
    out.push(problem(['listen', i, 'host'], `refusing to listen on ${host} (not a loopback address) ${why}: ${advice}`));
  });
  // Said once: when the file names an open address itself, its entry already carries the error.
  const running = named ? undefined : listening.find((l) => !isLoopback(l.host));
  if (running !== undefined) {
    const msg = `refusing to serve ${why}: the gateway listens on ${running.host} (not a loopback address; listen addresses change only at a restart), and ${advice}`;
    out.push(problem(['listen'], msg));
  }
}

/** RFC 1929 gives the username and the password one length byte each: 255 bytes of UTF-8, not 255 characters. */
export const MAX_LOGIN_BYTES = 255;

/** Why `text` cannot be a SOCKS5 username or password, or undefined when it can. */
export function loginBytesProblem(text: string): string | undefined {
  const bytes = Buffer.byteLength(text, 'utf8');
  return bytes > MAX_LOGIN_BYTES ? `is ${bytes} bytes in UTF-8: a SOCKS5 login (RFC 1929) carries at most ${MAX_LOGIN_BYTES}` : undefined;
}

/** Past 255 characters the schema's maxLength reports it already. */
function checkLoginBytes(text: string | undefined, path: ConfigPath, out: Issue[]): void {
  const bad = text === undefined || text.length > 255 ? undefined : loginBytesProblem(text);
  if (bad !== undefined) out.push(problem(path, bad));
}

function checkAuth(root: Obj, out: Issue[]): void {
  const seen = new Set<string>();
  list(obj(root['auth'])?.['users']).forEach((entry, i) => {
    const user = obj(entry);
    const name = str(user?.['username']);
    if (name !== undefined) {
      if (name.includes('-')) {
        out.push(
          problem(
            ['auth', 'users', i, 'username'],
            `"${name}" contains "-", which starts the session parameters at login (alice-session-KEY-country-de logs in as alice)`,
          ),
        );
      }
      // No client could log in over HTTP.
      if (name.includes(':')) out.push(problem(['auth', 'users', i, 'username'], `"${name}" ${BASIC_COLON}`));
      if (seen.has(name)) out.push(problem(['auth', 'users', i, 'username'], `user "${name}" is defined twice`));
      seen.add(name);
    }
    for (const key of ['username', 'password'] as const) checkLoginBytes(str(user?.[key]), ['auth', 'users', i, key], out);
    const rate = str(user?.['bandwidth']);
    if (rate !== undefined && new RegExp(RATE_PATTERN).test(rate) && parseRate(rate) === undefined) {
      out.push(problem(['auth', 'users', i, 'bandwidth'], `${rate} is not a usable rate (at least 1B/s)`));
    }
    const hash = str(user?.['password_hash']);
    if (hash !== undefined && /^scrypt\$/.test(hash)) {
      const parsed = parsePasswordHash(hash);
      // A hash of the wrong shape fails the schema's pattern already: one line for one problem.
      if (typeof parsed === 'string' && parsed !== HASH_SHAPE) out.push(problem(['auth', 'users', i, 'password_hash'], parsed));
    }
  });
}

function checkDns(root: Obj, out: Issue[]): void {
  const dns = obj(root['dns']);
  if (!dns) return;
  list(dns['servers']).forEach((server, i) => {
    const text = str(server);
    if (text === undefined) return;
    // Checked here, not left to Resolver#setServers: Node 20 accepts port 99999 and aborts the
    // whole process (a native assertion) on port 0.
    const hp = parseHostPort(text);
    if (!hp || isIP(hp.host) === 0) {
      // A DoH URL or a proxy-list line pasted here may carry a password: the message leaves it out.
      out.push(problem(['dns', 'servers', i], `"${withoutCredentials(text)}" is not an IP address with an optional port 1-65535 ("1.1.1.1", "127.0.0.1:5353", "[::1]:53")`));
    }
  });
  for (const [name, ip] of entries(dns['hosts'])) {
    const dead = deadHostsName(name);
    if (dead !== undefined) out.push({ ...problem(['dns', 'hosts', name], dead), atKey: true });
    const text = str(ip);
    if (text !== undefined && isIP(text) === 0) out.push(problem(['dns', 'hosts', name], `"${text}" is not an IP address`));
  }
  const min = str(dns['min_ttl']);
  const max = str(dns['max_ttl']);
  if (min !== undefined && max !== undefined) {
    const [a, b] = [min, max].map(durationOrNaN) as [number, number];
    if (a > b) out.push(problem(['dns', 'min_ttl'], `min_ttl (${min}) is longer than max_ttl (${max})`));
  }
}

function durationOrNaN(text: string): number {
  return parseDuration(text) ?? Number.NaN;
}

/**
 * Durations that arm a timer: over MAX_TIMER_MS Node fires them after 1 ms, and a 0 fires
 * them at once (a handshake that can never finish, a health check loop). `idle` ones read
 * 0 as "off"; the DNS TTLs are only compared with the clock, so any length will do.
 */
const TIMER_DURATIONS: readonly (readonly [section: string, keys: readonly string[], zero: 'off' | 'refused'])[] = [
  ['limits', ['handshake_timeout', 'connect_timeout', 'bind_timeout'], 'refused'],
  ['limits', ['idle_timeout', 'udp_idle_timeout', 'drain_timeout'], 'off'],
  ['dns', ['timeout'], 'refused'],
];
const HEALTH_DURATIONS = ['interval', 'timeout'] as const;
const DNS_TTLS = ['min_ttl', 'max_ttl', 'negative_ttl'] as const;
const MAX_TIMER_TEXT = `${Math.floor(MAX_TIMER_MS / 3_600_000)}h`;

function checkDurations(root: Obj, out: Issue[]): void {
  for (const [section, keys, zero] of TIMER_DURATIONS) {
    for (const key of keys) checkTimer(obj(root[section])?.[key], [section, key], zero, out);
  }
  for (const [name, u] of entries(root['upstreams'])) {
    const hc = obj(obj(u)?.['health_check']);
    for (const key of HEALTH_DURATIONS) checkTimer(hc?.[key], ['upstreams', name, 'health_check', key], 'refused', out);
    // A lifetime of 0 would read as none (a session keeps its member while it is healthy), the
    // opposite of what it says; a login's `lifetime-0s` is refused the same way.
    checkNonZeroLength(obj(u)?.['sticky_lifetime'], ['upstreams', name, 'sticky_lifetime'], 'leave it out to keep a session on its member while that member is healthy', out);
  }
  for (const key of DNS_TTLS) checkLength(obj(root['dns'])?.[key], ['dns', key], out);
  const failures = obj(obj(root['limits'])?.['auth_failures']);
  // A window of 0 counts no failure twice and a block of 0 blocks nothing: the block would be
  // off in silence, only the delay left. Turning it off is said with `max`.
  for (const key of ['window', 'block']) {
    checkNonZeroLength(failures?.[key], ['limits', 'auth_failures', key], 'to never block, give `max` a number no client reaches: failures are still answered after a growing delay', out);
  }
}

/** A duration checkLength reads, where 0 would silently mean something else: refused, `hint` saying how to say that. */
function checkNonZeroLength(value: unknown, path: ConfigPath, hint: string, out: Issue[]): void {
  const text = durationText(value);
  if (text !== undefined && parseDuration(text) === 0) out.push(problem(path, `must be longer than 0 (${hint})`));
  checkLength(value, path, out);
}

/** Durations only compared with the clock: any length will do, up to what milliseconds can count exactly. */
function checkLength(value: unknown, path: ConfigPath, out: Issue[]): void {
  const text = durationText(value);
  if (text !== undefined && parseDuration(text) === undefined) out.push(problem(path, `${text} is too long`));
}

function checkTimer(value: unknown, path: ConfigPath, zero: 'off' | 'refused', out: Issue[]): void {
  const text = durationText(value);
  if (text === undefined) return;
  const ms = parseDuration(text) ?? Infinity;
  if (ms > MAX_TIMER_MS) out.push(problem(path, `${text} is too long: a timer waits at most ${MAX_TIMER_TEXT} (2^31-1 ms)`));
  else if (ms === 0 && zero === 'refused') out.push(problem(path, 'must be longer than 0 (it bounds a wait)'));
}

/** The text of a value the schema accepts as a duration (the schema reports the rest). */
function durationText(value: unknown): string | undefined {
  const text = str(value);
  return text !== undefined && new RegExp(DURATION_PATTERN).test(text) ? text : undefined;
}

// One catalog of failures. Every error that can reach a client carries the
// SOCKS reply code (RFC 1928 §6) it turns into; `toRep` is the only mapping.

export const Rep = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;
export type Rep = (typeof Rep)[keyof typeof Rep];

export type ErrorCode = `GW_ERR_${string}`;

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly rep: Rep;
  constructor(code: ErrorCode, message: string, rep: Rep, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.rep = rep;
  }
}

/** Malformed or unsupported client input; `rep` is what the client is told before the close. */
export class ProtocolError extends GatewayError {
  constructor(message: string, rep: Rep = Rep.GENERAL_FAILURE) {
    super('GW_ERR_PROTOCOL', message, rep);
  }
}

export class RuleBlockedError extends GatewayError {
  constructor(rule: string) {
    super('GW_ERR_BLOCKED', `blocked by rule "${rule}"`, Rep.NOT_ALLOWED);
  }
}

export class ConnectTimeoutError extends GatewayError {
  /** `missing`: what did not come in time, when a connection did (an upstream's answer). */
  constructor(what: string, ms: number, missing = 'no connection') {
    super('GW_ERR_CONNECT_TIMEOUT', `${what}: ${missing} within ${ms}ms`, Rep.TTL_EXPIRED);
  }
}

/** A name that does not resolve (NXDOMAIN, no data, resolver timeout or SERVFAIL). */
export class NameNotResolvedError extends GatewayError {
  constructor(host: string, reason: string, options?: ErrorOptions) {
    super('GW_ERR_DNS', `${host}: ${reason}`, Rep.HOST_UNREACHABLE, options);
  }
}

/**
 * The gateway had no file descriptor for a socket of its own (EMFILE, ENFILE): its own
 * shortage, which no upstream or destination caused and another member would meet as well.
 */
export class OutOfDescriptorsError extends GatewayError {
  constructor(what: string, options?: ErrorOptions) {
    super('GW_ERR_NO_DESCRIPTORS', `${what}: out of file descriptors`, Rep.GENERAL_FAILURE, options);
  }
}

const NO_DESCRIPTOR_CODES: ReadonlySet<string> = new Set(['EMFILE', 'ENFILE']);

/** `err` as an OutOfDescriptorsError when it is one or an EMFILE/ENFILE (only our own syscalls give those); else undefined. */
export function asOutOfDescriptors(what: string, err: unknown): OutOfDescriptorsError | undefined {
  if (err instanceof OutOfDescriptorsError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code !== undefined && NO_DESCRIPTOR_CODES.has(code) ? new OutOfDescriptorsError(what, { cause: err }) : undefined;
}

/** An upstream SOCKS server answered with a non-zero REP: the client gets the same code. */
export class UpstreamRefusedError extends GatewayError {
  /** `said`: the upstream's own words where its protocol has more than a code (an HTTP status line). */
  constructor(upstream: string, rep: Rep, options?: ErrorOptions, said?: string) {
    super('GW_ERR_UPSTREAM_REFUSED', `upstream "${upstream}" replied ${rep}${said === undefined ? '' : `: ${said}`}`, rep, options);
  }
}

/** Which limit refused a client: the gateway's own capacity, or a share of it. */
export type LimitName = 'max_connections' | 'max_handshakes' | 'max_connections_per_source' | 'user_max_connections';

/**
 * A limit refused the request (PRODUCT.md "Limits"): SOCKS5 0x02; HTTP 503 when the gateway
 * is full, 429 for a per-user or per-source share.
 */
export class LimitError extends GatewayError {
  readonly limit: LimitName;
  constructor(limit: LimitName) {
    super('GW_ERR_LIMIT', `limit ${limit} reached`, Rep.NOT_ALLOWED);
    this.limit = limit;
  }

  /** True for limits on the whole gateway (HTTP 503), false for one client's share (429). */
  get gatewayFull(): boolean {
    return this.limit === 'max_connections' || this.limit === 'max_handshakes';
  }
}

/** Start-up reasons a listener cannot open, in words; the errno follows them. */
const LISTEN_WHY: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (a port below 1024 needs privileges)',
  EADDRNOTAVAIL: 'no such address on this host',
};

/**
 * A listener that could not open at start-up, named as the config names it (`listen[1]`, the
 * admin listener) with its address: on a host with several, "address already in use" alone
 * does not say which one. `code` is the errno's, as on the error it wraps.
 */
export class ListenError extends Error {
  readonly code: string | undefined;
  constructor(which: string, address: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    const why = (code && LISTEN_WHY[code]) ?? (cause instanceof Error ? cause.message : String(cause));
    super(`${which} ${address}: ${why}${code ? ` (${code})` : ''}`, { cause });
    this.name = 'ListenError';
    this.code = code;
  }
}

/** Config problems: `where` is `FILE:LINE:COL` when known. Never reaches a client. */
export class ConfigError extends Error {
  readonly issues: readonly string[];
  constructor(issues: readonly string[]) {
    super(issues.join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

const ERRNO_REP: Readonly<Record<string, Rep>> = {
  ECONNREFUSED: Rep.CONNECTION_REFUSED,
  ENETUNREACH: Rep.NETWORK_UNREACHABLE,
  EHOSTUNREACH: Rep.HOST_UNREACHABLE,
  EHOSTDOWN: Rep.HOST_UNREACHABLE,
  ENOTFOUND: Rep.HOST_UNREACHABLE,
  EAI_AGAIN: Rep.HOST_UNREACHABLE,
  EAI_NONAME: Rep.HOST_UNREACHABLE,
  ENODATA: Rep.HOST_UNREACHABLE,
  ETIMEDOUT: Rep.TTL_EXPIRED,
  EADDRNOTAVAIL: Rep.NETWORK_UNREACHABLE,
  EAFNOSUPPORT: Rep.ADDRESS_TYPE_NOT_SUPPORTED,
};

/** The only place where an arbitrary failure becomes a reply code. Match on codes, never messages. */
export function toRep(err: unknown): Rep {
  if (err instanceof GatewayError) return err.rep;
  // Happy-eyeballs attempts fail as one AggregateError: the last real error decides.
  if (err instanceof AggregateError && err.errors.length > 0) return toRep(err.errors[err.errors.length - 1]);
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return (code ? ERRNO_REP[code] : undefined) ?? Rep.GENERAL_FAILURE;
}

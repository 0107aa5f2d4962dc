// What a pool makes of its members' failures: its own refusals, and which failures send a
// request on to another member.

import type { Command } from '../config/types.js';
import { GatewayError, Rep, UpstreamRefusedError } from '../errors.js';
import { isUpstreamFault } from './socks5-errors.js';

/** No member could even be tried: all ejected (and none due for a trial), or the pool is empty. */
export class PoolExhaustedError extends GatewayError {
  constructor(pool: string) {
    super('GW_ERR_POOL_DOWN', `pool "${pool}": no usable member`, Rep.GENERAL_FAILURE);
  }
}

/** The session's tag filters leave no member (whatever their health): 0x04, as PRODUCT.md says. */
export class NoMemberMatchesError extends GatewayError {
  /** The client's own filters, `country=de,city=berlin`: an HTTP client is told them (no member is named). */
  readonly filters: string;
  constructor(pool: string, filters: readonly [string, string][]) {
    const text = filters.map(([k, v]) => `${k}=${v}`).join(',');
    super('GW_ERR_NO_MEMBER_MATCH', `pool "${pool}": no member matches ${text}`, Rep.HOST_UNREACHABLE);
    this.filters = text;
  }
}

/** The members the session's tag filters leave can none of them carry the command (an http member cannot BIND): 0x07, as an outbound without it. */
export class NoMemberCarriesError extends GatewayError {
  constructor(pool: string, command: Command, filters: readonly [string, string][]) {
    const matching = filters.length === 0 ? '' : ` matching ${filters.map(([k, v]) => `${k}=${v}`).join(',')}`;
    super('GW_ERR_POOL_CANNOT_CARRY', `pool "${pool}": no member${matching} can carry ${command}`, Rep.COMMAND_NOT_SUPPORTED);
  }
}

/** A member's 0x01: its own failure or the destination's, which only another member's answer tells apart. */
export function ambiguous(err: unknown): boolean {
  return err instanceof UpstreamRefusedError && err.rep === Rep.GENERAL_FAILURE;
}

/**
 * A member's 0x07 to UDP ASSOCIATE or BIND: the member does not do the command (microsocks does
 * CONNECT only), which says nothing of the destination; another member may do it.
 */
function notCarried(err: unknown, command: Command): boolean {
  return command !== 'connect' && err instanceof UpstreamRefusedError && err.rep === Rep.COMMAND_NOT_SUPPORTED;
}

/**
 * A destination the member cannot be asked for, refused here unsent: an IPv6 address (or a name
 * with only IPv6 addresses) to a SOCKS4 member. Its 0x08 is not an upstream's answer about the
 * destination; a SOCKS5 or HTTP member can carry it.
 */
export function notSayable(err: unknown): boolean {
  return err instanceof GatewayError && err.code === 'GW_ERR_UPSTREAM_FAMILY';
}

/** Another member is worth trying: this one failed itself, gave the ambiguous 0x01, or cannot carry the command or the address. */
export function retryable(err: unknown, command: Command): boolean {
  return isUpstreamFault(err) || err instanceof PoolExhaustedError || ambiguous(err) || notCarried(err, command) || notSayable(err);
}

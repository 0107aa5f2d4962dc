import type { Logger } from 'pino';
import type { Cancellation, ResolvedAddress } from '../dns/types.js';
import type { ByteBudget } from '../outbound/byte-budget.js';
import type { OutboundContext } from '../outbound/types.js';
import type { AddressSet } from '../outbound/egress.js';
import { unmapped } from '../protocol/address.js';
import type { CommandContext } from './context.js';

/**
 * What an outbound learns of the request: who asks (for member templates and sticky
 * sessions). `log`, `signal`, `cancel` and `arrivedAt` are the connection's, read when an
 * outbound asks: most dials never log, and a child logger made per connection only to be
 * carried along cost CPU on every accept and about half a KiB held for the life of the relay.
 */
class RequestOutboundContext implements OutboundContext {
  readonly sessionKey: string;
  readonly user: string | undefined;
  readonly params: Readonly<Record<string, string>>;
  resolved: ResolvedAddress[] | undefined = undefined;
  unresolved: unknown = undefined;
  udpBudget: ByteBudget | undefined = undefined;
  egressLift: AddressSet | undefined = undefined;
  command: string | undefined = undefined;
  member: string | undefined = undefined;
  readonly #ctx: CommandContext;

  constructor(ctx: CommandContext) {
    this.#ctx = ctx;
    this.sessionKey = ctx.sessionKey;
    this.user = ctx.user;
    this.params = ctx.request.params;
  }

  get signal(): AbortSignal {
    return this.#ctx.signal;
  }

  get log(): Logger {
    return this.#ctx.log;
  }

  get cancel(): Cancellation {
    return this.#ctx.cancel;
  }

  get arrivedAt(): string {
    return unmapped(this.#ctx.client.localAddress ?? '127.0.0.1');
  }
}

export function outboundContext(ctx: CommandContext): OutboundContext {
  return new RequestOutboundContext(ctx);
}

/**
 * The outcome of one dial or BIND through `outbound`, timed from `started`
 * (socksgate_outbound_requests_total, socksgate_connect_seconds). One its client gave up (or
 * that was killed, or cut by the stop) is no outcome of the outbound's, and is not counted.
 */
export function countAttempt(ctx: CommandContext, outbound: string, started: number, ok: boolean): void {
  if (!ok && ctx.cancel.aborted) return;
  ctx.metrics.outboundAttempt(outbound, ok, (performance.now() - started) / 1000);
}

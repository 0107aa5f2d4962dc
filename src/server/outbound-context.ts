import type { OutboundContext } from '../outbound/types.js';
import type { CommandContext } from './context.js';

/** What an outbound learns of the request: who asks (for member templates and sticky sessions). */
export function outboundContext(ctx: CommandContext): OutboundContext {
  const out: OutboundContext = {
    signal: ctx.signal,
    get log() {
      return ctx.log; // the connection's child logger, made only if an outbound logs
    },
    sessionKey: ctx.sessionKey,
    params: ctx.request.params,
  };
  if (ctx.user !== undefined) out.user = ctx.user;
  return out;
}

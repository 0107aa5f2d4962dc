import type { OutboundContext } from '../outbound/types.js';
import type { CommandContext } from './context.js';

/** What an outbound learns of the request: who asks (for member templates and sticky sessions). */
export function outboundContext(ctx: CommandContext): OutboundContext {
  const out: OutboundContext = { signal: ctx.signal, log: ctx.log, sessionKey: ctx.sessionKey, params: ctx.request.params };
  if (ctx.user !== undefined) out.user = ctx.user;
  return out;
}

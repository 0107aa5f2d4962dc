import { GatewayError, ProtocolError, Rep, RuleBlockedError } from '../errors.js';
import { isDestinationHost } from '../config/domains.js';
import { until } from '../outbound/deadline.js';
import type { Outbound } from '../outbound/types.js';
import type { Decision } from '../router/types.js';
import type { Command } from '../config/types.js';
import type { Address } from '../protocol/types.js';
import type { CommandContext } from './context.js';

export interface Routed {
  decision: Decision;
  outbound: Outbound;
}

/**
 * Routes one request and finds its outbound, on `snapshot`'s rules (the request's own unless
 * given). `block` throws RuleBlockedError (REP 0x02); the decision is recorded for the access
 * log and metrics either way.
 */
export async function route(ctx: CommandContext, cmd: Command, dest: Address = ctx.dest, snapshot = ctx.snapshot): Promise<Routed> {
  const { record } = ctx;
  // Rules and resolvers must read a name alike: one that is not a plain hostname is refused
  // (SOCKS 0x04, HTTP 400) before any rule sees it.
  if (!isDestinationHost(dest.host)) {
    throw new ProtocolError(`not a hostname: ${JSON.stringify(dest.host.slice(0, 100))}`, Rep.HOST_UNREACHABLE);
  }
  const decided = snapshot.router.decide({ dest, cmd, user: ctx.user, source: ctx.source });
  // A rule that resolves the name waits on DNS: a client gone meanwhile is let go at once.
  const decision = decided instanceof Promise ? await until(decided, ctx.cancel) : decided;
  record.rule = decision.rule;
  record.outbound = decision.action;
  ctx.metrics.ruleHit(decision.rule, decision.action);
  if (decision.action === 'block') throw new RuleBlockedError(decision.rule);
  const outbound = snapshot.outbounds.get(decision.action);
  // The config loader rejects actions naming nothing; this guards a bug, not input.
  if (!outbound) throw new GatewayError('GW_ERR_NO_OUTBOUND', `no outbound "${decision.action}"`, Rep.GENERAL_FAILURE);
  return { decision, outbound };
}

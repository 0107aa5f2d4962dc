import type { Command } from '../config/types.js';
import type { ResolvedAddress } from '../dns/types.js';
import type { Address } from '../protocol/types.js';
import type { CidrSet } from './cidrs.js';

export interface RouteRequest {
  dest: Address;
  cmd: Command;
  user?: string; // authenticated username (session suffix stripped)
  source: string; // client IP
}

export interface Decision {
  rule: string; // rule name, or "default"
  ruleIndex: number; // index in `rules`, -1 for the default
  action: string; // "direct" | "block" | an upstream or pool name
  /** Set when matching had to resolve the name: connect with the same answer. */
  resolved?: ResolvedAddress[];
  /** Set when matching had to resolve the name and could not: connecting fails with it, not with a second lookup. */
  unresolved?: unknown;
  /** The rule's own `cidrs`: an explicit route into them lifts the egress guard (PRODUCT.md "Egress guard"). */
  cidrs?: CidrSet;
}

export interface Router {
  /** A Decision at once when no rule needs a DNS lookup, else its promise. */
  decide(req: RouteRequest): Decision | Promise<Decision>;
}

// `block`: refused with 0x02 (RFC 1928 §6, "connection not allowed by ruleset").

import { RuleBlockedError } from '../errors.js';
import type { Outbound } from './types.js';

export const blockOutbound = (rule: string): Outbound => ({
  name: 'block',
  connect: () => Promise.reject(new RuleBlockedError(rule)),
  close: async () => {},
});

// The username and password an upstream gets for one request. Pool members may carry
// templates ({session}, {user}, {NAME}) that are filled from the request's session
// parameters; every proxy outbound (socks5, socks4, http) asks here, so all fill alike.

import type { OutboundContext } from './types.js';

export interface Credentials {
  username?: string;
  password?: string;
}

/** The credentials to send for this request. */
export function credentialsFor(configured: Credentials, _ctx: Pick<OutboundContext, 'user' | 'params' | 'sessionKey'>): Credentials {
  return configured;
}

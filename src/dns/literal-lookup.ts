// A `lookup` for dgram sockets: Node resolves the address of every send() through
// dns.lookup, which for an IP literal still costs a call and a nextTick per datagram.
// The gateway sends only to literals (names are resolved through its own cache first),
// so a literal is answered at once; anything else goes to dns.lookup as before.

import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';

type Callback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

export function literalLookup(host: string, opts: LookupOneOptions, callback: Callback): void {
  const family = isIP(host);
  if (family !== 0) return callback(null, host, family);
  dnsLookup(host, opts, callback);
}

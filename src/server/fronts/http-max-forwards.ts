// Max-Forwards (RFC 9110 §7.6.2): a TRACE or OPTIONS request that may go no further is
// answered here, as its final recipient; one that may go further goes on with one hop less.
// Other methods may ignore it (§7.6.2), and do: their Max-Forwards goes on as it came.

import type { IncomingMessage, ServerResponse } from 'node:http';

const LIMITED = new Set(['TRACE', 'OPTIONS']);
/** Request fields a TRACE echo leaves out: they likely hold secrets (RFC 9110 §9.3.8). */
const NOT_ECHOED = new Set(['proxy-authorization', 'authorization', 'cookie']);

/**
 * The hops a TRACE or OPTIONS request may still take; undefined for other methods and for a
 * value that is not one decimal number (no limit is read into it: it goes on as it came).
 */
export function hopsLeft(req: IncomingMessage): number | undefined {
  if (!LIMITED.has(req.method ?? '')) return undefined;
  const values: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'max-forwards') values.push(req.rawHeaders[i + 1]!.trim());
  // Repeated with one value, it is that value; differing ones say nothing certain.
  if (values.length === 0 || values.some((v) => v !== values[0]) || !/^\d{1,15}$/.test(values[0]!)) return undefined;
  return Number(values[0]);
}

/** `headers` with every Max-Forwards replaced by one, `hops` less one (the request goes on, hops > 0). */
export function oneHopLess(headers: Array<[string, string]>, hops: number): Array<[string, string]> {
  const out = headers.filter(([k]) => k.toLowerCase() !== 'max-forwards');
  out.push(['Max-Forwards', String(hops - 1)]);
  return out;
}

/**
 * The answer of the final recipient (RFC 9110 §7.6.2): TRACE gets its request back as
 * message/http (§9.3.8), OPTIONS a 200 saying this hop was reached (§9.3.7). Squid does the
 * same for TRACE; it answers OPTIONS with a 501.
 */
export function answerAsFinal(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'TRACE') {
    let echo = `${req.method} ${req.url ?? ''} HTTP/${req.httpVersion}\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (!NOT_ECHOED.has(req.rawHeaders[i]!.toLowerCase())) echo += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    }
    const body = Buffer.from(`${echo}\r\n`, 'latin1');
    res.writeHead(200, { 'content-type': 'message/http', 'content-length': body.length });
    res.end(body);
    return;
  }
  res.writeHead(200, { 'content-length': 0 });
  res.end();
}

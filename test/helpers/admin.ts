// Real HTTP requests to the admin listener of a gateway started by the test.
import type { Gateway } from '../../src/gateway.js';

export interface AdminAnswer {
  status: number;
  headers: Headers;
  /** The body as received, for grepping. */
  text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: unknown;
}

export interface AdminClient {
  base: string;
  request(method: string, path: string, opts?: { body?: unknown; token?: string | null }): Promise<AdminAnswer>;
}

/**
 * A client for `gw`'s admin listener (or the one at "host:port", a cluster primary's) that
 * sends `token` unless a request says otherwise.
 */
export function adminClient(gw: Gateway | string, token?: string): AdminClient {
  let base: string;
  if (typeof gw === 'string') base = `http://${gw}`;
  else {
    const addr = gw.adminAddress;
    if (!addr) throw new Error('the gateway has no admin listener');
    base = `http://127.0.0.1:${addr.port}`;
  }
  return {
    base,
    async request(method, path, opts = {}) {
      const headers: Record<string, string> = {};
      const t = opts.token === undefined ? token : opts.token;
      if (t !== null && t !== undefined) headers.authorization = `Bearer ${t}`;
      if (opts.body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(base + path, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text) as unknown;
      } catch {
        json = undefined;
      }
      return { status: res.status, headers: res.headers, text, json };
    },
  };
}

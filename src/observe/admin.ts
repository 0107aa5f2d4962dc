// The admin listener (`metrics:`): /metrics, /healthz, /readyz, and when api_token is set
// the admin API under /api and the status page at /.

import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { isLoopback } from '../config/net.js';
import { ListenError } from '../errors.js';
import { formatAddress } from '../protocol/address.js';
import type { Config, MetricsConfig } from '../config/types.js';
import type { Logger } from './logger.js';
import type { ApiTarget } from './api-routes.js';
import { AdminConnections } from './admin-connections.js';
import { handleApi } from './api.js';
import { shownTarget } from './shown-target.js';
import { closeIfUnread, HttpError, loopbackHostAllowed, sendJson } from './http.js';

/** What the listener reads of the running gateway. */
export interface AdminTarget extends ApiTarget {
  readonly config: Config;
  readonly log: Logger;
  /** True once the gateway has begun to drain. */
  readonly draining: boolean;
}

const STATIC_DIR = new URL('../../static/status/', import.meta.url);
const PAGES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/status.js': { file: 'status.js', type: 'text/javascript; charset=utf-8' },
  '/status.css': { file: 'status.css', type: 'text/css; charset=utf-8' },
};
// The page loads nothing but itself and talks only to this listener.
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/**
 * Bounds for whoever can connect: a few scrapers, probes and browser tabs need far fewer
 * connections, and beyond them new ones are dropped rather than taking the descriptors the
 * proxy listeners need; one address gets an eighth (its next one replaces its own oldest idle one), and when the
 * listener is full a new connection replaces an idle one (admin-connections.ts), so idle connections held open
 * cannot lock out a probe. A request is a line, a few headers and at most a 16 KiB body.
 */
const CONNECTION_LIMITS = { total: 256, perSource: 32 } as const;
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** How often node looks for connections past those timeouts (its default is 30 s). */
const TIMEOUT_CHECK_MS = 1_000;

/** The status page's files by path, read once. */
type StatusPages = ReadonlyMap<string, { body: Buffer; type: string }>;

async function loadStatusPages(): Promise<StatusPages> {
  const pages = new Map<string, { body: Buffer; type: string }>();
  for (const [path, { file, type }] of Object.entries(PAGES)) pages.set(path, { body: await readFile(new URL(file, STATIC_DIR)), type });
  return pages;
}

function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  closeIfUnread(res);
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers }).end(body);
}

/**
 * What the admin listener reads outside /api: one process's gateway, or a cluster's primary
 * (metrics summed over the workers, ready while they all listen).
 */
export interface AdminSource {
  /** The token /api and the status page need now, if any (a reload can set, change or remove it). */
  apiToken(): string | undefined;
  metrics(): Promise<{ body: string; type: string }>;
  /** Why the listeners should not be sent new connections ('draining', 'starting'), or undefined. */
  notReady(): string | undefined;
  /** Answers a request under /api (the token is the one apiToken() gave). */
  api(req: IncomingMessage, res: ServerResponse, url: URL, token: string): Promise<void>;
  readonly log: Logger;
  /** Counts an admin request that failed unexpectedly (the single process's metric). */
  failed?(): void;
}

/**
 * The admin listener, the same for one process and a cluster's primary: /metrics, /healthz,
 * /readyz, and with an api_token /api and the status page. A path it does not serve is 404
 * before a method it does not take is 405.
 */
export async function startAdmin(cfg: MetricsConfig, source: AdminSource): Promise<Server> {
  const pages = await loadStatusPages();
  // On loopback only this machine's clients can connect, and they name an address or localhost.
  const checkHost = isLoopback(cfg.host);
  const render = shared(() => source.metrics());
  const plain: Readonly<Record<string, (res: ServerResponse) => Promise<void> | void>> = {
    '/metrics': async (res) => {
      let metrics: { body: string; type: string };
      try {
        metrics = await render();
      } catch (err) {
        // A scrape the source refuses for a reason it names (a worker that does not answer).
        if (!(err instanceof HttpError)) throw err;
        source.log.warn({ reason: err.message }, 'metrics not served');
        return text(res, err.status, `${err.message}\n`);
      }
      res.writeHead(200, { 'content-type': metrics.type }).end(metrics.body);
    },
    '/healthz': (res) => text(res, 200, 'ok\n'),
    // Listening with a loaded config: the admin listener starts after the proxy listeners.
    '/readyz': (res) => {
      const why = source.notReady();
      text(res, why === undefined ? 200 : 503, `${why ?? 'ready'}\n`);
    },
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://admin.invalid');
    } catch {
      return text(res, 400, 'bad request\n'); // an absolute-form target no URL parser takes
    }
    // RFC 9110 §15.5.20: refused before any path is served, /metrics and /healthz included.
    if (checkHost && !loopbackHostAllowed(req.headers.host)) return text(res, 421, 'misdirected request: this listener answers to an IP address or localhost\n');
    const path = url.pathname;
    // The token is read per request: a reload can set, change or remove it.
    const token = source.apiToken();
    if (token !== undefined && (path === '/api' || path.startsWith('/api/'))) return source.api(req, res, url, token);
    const page = token !== undefined ? pages.get(path) : undefined;
    const serve = plain[path];
    if (!serve && !page) return text(res, 404, 'not found\n');
    // RFC 9110 §15.5.6: a 405 says which methods the path takes.
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    closeIfUnread(res); // a GET or HEAD that came with a body
    if (serve) return serve(res);
    res.writeHead(200, { 'content-type': page!.type, ...PAGE_HEADERS }).end(page!.body);
  };
  const timeouts = { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: TIMEOUT_CHECK_MS };
  const connections = new AdminConnections(CONNECTION_LIMITS);
  const server = createServer(timeouts, (req, res) => {
    res.once('close', connections.serving(req.socket));
    handle(req, res).catch((err: unknown) => {
      // A client gone before its request was whole (a body cut short): nobody to answer, and
      // no failure of ours, which would count as unexpected and log at error level.
      if (!req.complete && req.socket.destroyed) {
        res.destroy();
        return void source.log.debug({ url: shownTarget(req.url ?? '/') }, 'admin request: the client left before its request was whole');
      }
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
      source.failed?.();
      source.log.error({ err, url: shownTarget(req.url ?? '/') }, 'admin request failed');
    });
  });
  server.on('connection', (socket: Socket) => void connections.admit(socket));
  server.listen(cfg.port, cfg.host);
  try {
    await once(server, 'listening'); // rejects on a listen error (EADDRINUSE)
  } catch (err) {
    throw new ListenError('the admin listener (metrics)', formatAddress({ host: cfg.host, port: cfg.port }), err);
  }
  // A failed accept (EMFILE) is an 'error' on the server: logged, never an uncaught exception.
  server.on('error', (err) => {
    source.failed?.();
    source.log.error({ err }, 'admin listener error');
  });
  return server;
}

/**
 * One call of `fn` at a time, its result given to every caller that asks while it runs. A
 * render of /metrics costs milliseconds of the one thread the proxy runs on: a client
 * pipelining scrapes on many connections (no token needed) had one rendered for each, and
 * stalled every relay for seconds; those asked meanwhile now share the render in progress.
 */
function shared<T>(fn: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () =>
    (running ??= fn().finally(() => {
      running = undefined;
    }));
}

/** The admin source of one process: its own registry, its own /api. */
export function gatewayAdmin(target: AdminTarget): AdminSource {
  return {
    apiToken: () => target.config.metrics?.api_token,
    metrics: async () => ({ body: await target.metrics.registry.metrics(), type: target.metrics.registry.contentType }),
    notReady: () => (target.draining ? 'draining' : undefined),
    api: (req, res, url, token) => handleApi(req, res, url, token, target),
    log: target.log,
    failed: () => target.metrics.unexpectedErrors.inc(),
  };
}

export function adminAddress(server: Server): AddressInfo {
  return server.address() as AddressInfo;
}

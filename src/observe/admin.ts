// The admin listener (`metrics:`): /metrics, /healthz, /readyz, and when api_token is set
// the admin API under /api and the status page at /.

import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config, MetricsConfig } from '../config/types.js';
import type { Logger } from './logger.js';
import type { ApiTarget } from './api-routes.js';
import { handleApi } from './api.js';
import { sendJson } from './http.js';

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

/** The status page's files by path, read once. */
export type StatusPages = ReadonlyMap<string, { body: Buffer; type: string }>;

export async function loadStatusPages(): Promise<StatusPages> {
  const pages = new Map<string, { body: Buffer; type: string }>();
  for (const [path, { file, type }] of Object.entries(PAGES)) pages.set(path, { body: await readFile(new URL(file, STATIC_DIR)), type });
  return pages;
}

export function sendStatusPage(res: ServerResponse, page: { body: Buffer; type: string }): void {
  res.writeHead(200, { 'content-type': page.type, ...PAGE_HEADERS }).end(page.body);
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(body);
}

export async function startAdmin(cfg: MetricsConfig, target: AdminTarget): Promise<Server> {
  const pages = await loadStatusPages();
  const plain: Readonly<Record<string, (res: ServerResponse) => Promise<void> | void>> = {
    '/metrics': async (res) => {
      const body = await target.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': target.metrics.registry.contentType }).end(body);
    },
    '/healthz': (res) => text(res, 200, 'ok\n'),
    // Listening with a loaded config: the admin listener starts after the proxy listeners.
    '/readyz': (res) => (target.draining ? text(res, 503, 'draining\n') : text(res, 200, 'ready\n')),
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const path = url.pathname;
    // The token is read per request: a reload can set, change or remove it.
    const token = target.config.metrics?.api_token;
    if (token !== undefined && (path === '/api' || path.startsWith('/api/'))) return handleApi(req, res, url, token, target);
    const page = token !== undefined ? pages.get(path) : undefined;
    const serve = plain[path];
    if (!serve && !page) return text(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed\n');
    if (serve) return serve(res);
    sendStatusPage(res, page!);
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
      target.metrics.unexpectedErrors.inc();
      target.log.error({ err, url: req.url }, 'admin request failed');
    });
  });
  server.listen(cfg.port, cfg.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return server;
}

export function adminAddress(server: Server): AddressInfo {
  return server.address() as AddressInfo;
}

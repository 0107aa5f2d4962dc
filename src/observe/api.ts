// The admin API's dispatcher: bearer token, route match, request validation (Ajv, the
// schemas the OpenAPI document publishes), JSON answers.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Ajv, type ValidateFunction } from 'ajv';
import { ROUTES, type ApiRoute, type ApiTarget } from './api-routes.js';
import { bearerMatches, HttpError, readJson, sendJson } from './http.js';
import { openApiDocument } from './openapi.js';
import type { JsonSchema } from './api-schemas.js';

interface Compiled {
  route: ApiRoute;
  segments: string[];
  params?: ValidateFunction;
  query?: ValidateFunction;
  body?: ValidateFunction;
}

const API_VERSION = '1.0.0';

/** Every route served: the table plus the document describing it (which describes itself). */
export const API_ROUTES: readonly ApiRoute[] = [
  ...ROUTES,
  {
    method: 'GET',
    path: '/api/openapi.json',
    operationId: 'openapi',
    summary: 'This document',
    responses: { 200: { description: 'OpenAPI 3.1', schema: { type: 'object' } } },
    handle: async () => ({ status: 200, body: DOCUMENT }),
  },
];
const DOCUMENT = openApiDocument(API_ROUTES, API_VERSION);

function objectSchema(properties: Record<string, JsonSchema>, required: string[]): JsonSchema {
  return { type: 'object', properties, required, additionalProperties: false };
}

/** Compiled once per process: the schemas are constants. */
const COMPILED: Compiled[] = (() => {
  // Path and query values arrive as text: coerce them to the documented types.
  const coercing = new Ajv({ allErrors: true, coerceTypes: true, strict: true });
  const strict = new Ajv({ allErrors: true, strict: true });
  return API_ROUTES.map((route) => {
    const c: Compiled = { route, segments: route.path.split('/') };
    if (route.params) c.params = coercing.compile(objectSchema(route.params, Object.keys(route.params)));
    if (route.query) c.query = coercing.compile(objectSchema(route.query.properties, route.query.required ?? []));
    if (route.body) c.body = strict.compile(route.body);
    return c;
  });
})();

function match(c: Compiled, segments: string[]): Record<string, string> | undefined {
  if (c.segments.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const want = c.segments[i]!;
    const got = segments[i]!;
    if (want.startsWith('{')) {
      try {
        params[want.slice(1, -1)] = decodeURIComponent(got);
      } catch {
        return undefined;
      }
      if (got === '') return undefined;
    } else if (want !== got) return undefined;
  }
  return params;
}

function check(validate: ValidateFunction | undefined, value: unknown, where: string): void {
  if (!validate || validate(value)) return;
  const first = validate.errors?.[0];
  throw new HttpError(400, `${where}${first?.instancePath ?? ''} ${first?.message ?? 'is invalid'}`);
}

/** An /api answer before it is sent: what a cluster worker hands its primary to merge. */
export interface ApiAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** The route that answered, refusals included (absent when none matched). */
  operation?: string;
}

/** A request matched to its route, its path and query checked: only the body is still to come. */
interface MatchedApi {
  readonly compiled: Compiled;
  readonly params: Record<string, string>;
  readonly query: Record<string, unknown>;
}

/**
 * The route of a request and its checked path and query, or the HttpError to answer
 * (404, 405, 400), decided before the body is read, as every route's answer is ordered.
 */
function matchApi(method: string, url: URL): MatchedApi {
  const segments = url.pathname.split('/');
  const candidates = COMPILED.map((c) => ({ c, params: match(c, segments) })).filter((x) => x.params !== undefined);
  if (candidates.length === 0) throw new HttpError(404, `no route ${url.pathname}`);
  // RFC 9110 §9.3.2: HEAD is GET without the body (node leaves the body out of the answer).
  const wanted = method === 'HEAD' ? 'GET' : method;
  const hit = candidates.find((x) => x.c.route.method === wanted);
  const allowed = candidates.flatMap((x) => (x.c.route.method === 'GET' ? ['GET', 'HEAD'] : [x.c.route.method]));
  if (!hit) throw new HttpError(405, `${method} is not served on ${url.pathname}`, { allow: allowed.join(', ') });
  const params = hit.params!;
  const query: Record<string, unknown> = Object.fromEntries(url.searchParams);
  check(hit.c.params, params, 'path');
  check(hit.c.query, query, 'query');
  return { compiled: hit.c, params, query };
}

/**
 * Answers one /api request whose token was already checked: route match, validation, the
 * route's handler. `body` is the request's JSON (undefined when it had none). A cluster
 * worker answers its primary's requests through this.
 */
export async function answerApi(method: string, url: URL, body: unknown, target: ApiTarget): Promise<ApiAnswer> {
  let matched: MatchedApi;
  try {
    matched = matchApi(method, url);
  } catch (err) {
    if (err instanceof HttpError) return errorAnswer(err);
    throw err;
  }
  return answerMatched(matched, body, target);
}

/** The body checked against the matched route, then its handler; refusals carry the route's operation. */
async function answerMatched({ compiled: c, params, query }: MatchedApi, body: unknown, target: ApiTarget): Promise<ApiAnswer> {
  const operation = c.route.operationId;
  try {
    if (c.body) check(c.body, body, 'body');
    else if (body !== undefined) throw new HttpError(400, 'this route takes no body');
    const answer = await c.route.handle({ params, query, body }, target);
    return { ...answer, operation };
  } catch (err) {
    if (err instanceof HttpError) return { ...errorAnswer(err), operation };
    throw err;
  }
}

/**
 * The checks an /api request passes before anything answers it, in order: the bearer token,
 * the route with its path and query (matchApi), then the JSON body. Returns the matched
 * route and the body; each failure is an HttpError.
 */
export async function readApiRequest(req: IncomingMessage, url: URL, token: string): Promise<{ matched: MatchedApi; body: unknown }> {
  if (!bearerMatches(req.headers.authorization, token)) {
    throw new HttpError(401, 'a valid "Authorization: Bearer TOKEN" header is required', { 'www-authenticate': 'Bearer realm="socksgate"' });
  }
  const matched = matchApi(req.method ?? '', url);
  return { matched, body: await readJson(req) };
}

/** The answer an HttpError stands for. */
export function errorAnswer(err: HttpError): ApiAnswer {
  return { status: err.status, body: { error: err.message }, headers: { ...err.headers } };
}

export function sendAnswer(res: ServerResponse, answer: ApiAnswer): void {
  sendJson(res, answer.status, answer.body, answer.headers);
}

/** Answers one /api request; `token` is the configured api_token. */
export async function handleApi(req: IncomingMessage, res: ServerResponse, url: URL, token: string, target: ApiTarget): Promise<void> {
  let answer: ApiAnswer;
  try {
    const { matched, body } = await readApiRequest(req, url, token);
    answer = await answerMatched(matched, body, target);
  } catch (err) {
    if (!(err instanceof HttpError)) throw err; // the listener answers 500 and logs it
    answer = errorAnswer(err);
  }
  sendAnswer(res, answer);
}

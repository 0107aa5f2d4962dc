// /api/openapi.json, built from the route table the router serves.

import type { ApiRoute } from './api-routes.js';
import { SCHEMAS, ref, type JsonSchema } from './api-schemas.js';
import { MAX_BODY_BYTES } from './http.js';

const refusal = (description: string): Record<string, unknown> => ({ description, content: { 'application/json': { schema: ref('Error') } } });
const unauthorized = refusal('Missing or wrong bearer token');
const unconfirmed = refusal('With `workers`: no worker answered, or a change or a kill was not confirmed by every worker (it may have reached only some: repeat it)');

/**
 * What any operation may answer before its own handler runs (src/observe/http.ts reads every
 * request's body first): a body too large, one that is not JSON, and, where the route sets
 * no 400 of its own, a body it does not take.
 */
const BODY_REFUSALS = {
  400: refusal('The request does not match its schema (a route that takes no body refuses one)'),
  413: refusal(`The body is larger than ${MAX_BODY_BYTES} bytes`),
  415: refusal('The body is not application/json'),
};

function operation(r: ApiRoute): Record<string, unknown> {
  const parameters = [
    ...Object.entries(r.params ?? {}).map(([name, schema]) => ({ name, in: 'path', required: true, schema })),
    ...Object.entries(r.query?.properties ?? {}).map(([name, schema]) => ({ name, in: 'query', required: r.query?.required?.includes(name) ?? false, schema })),
  ];
  const responses: Record<string, unknown> = { ...BODY_REFUSALS, 401: unauthorized, 503: unconfirmed };
  for (const [status, { description, schema }] of Object.entries(r.responses)) {
    responses[status] = { description, content: { 'application/json': { schema } } };
  }
  return {
    operationId: r.operationId,
    summary: r.summary,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: r.body } } } } : {}),
    responses,
  };
}

export function openApiDocument(routes: readonly ApiRoute[], version: string): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) (paths[r.path] ??= {})[r.method.toLowerCase()] = operation(r);
  return {
    openapi: '3.1.0',
    info: {
      title: 'socksgate admin API',
      version,
      description:
        'Served on the admin listener (`metrics:`) when `metrics.api_token` is set. JSON in and out; passwords never appear. With `workers`, every worker answers and the answers are merged; the header `x-socksgate-workers` of a read says how many workers it covers.',
    },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'metrics.api_token' } },
      schemas: SCHEMAS,
    },
  };
}

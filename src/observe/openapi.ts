// /api/openapi.json, built from the route table the router serves.

import type { ApiRoute } from './api-routes.js';
import { SCHEMAS, ref, type JsonSchema } from './api-schemas.js';

const unauthorized = { description: 'Missing or wrong bearer token', content: { 'application/json': { schema: ref('Error') } } };
const unconfirmed = {
  description: 'With `workers`: no worker answered, or a change or a kill was not confirmed by every worker (it may have reached only some: repeat it)',
  content: { 'application/json': { schema: ref('Error') } },
};

function operation(r: ApiRoute): Record<string, unknown> {
  const parameters = [
    ...Object.entries(r.params ?? {}).map(([name, schema]) => ({ name, in: 'path', required: true, schema })),
    ...Object.entries(r.query?.properties ?? {}).map(([name, schema]) => ({ name, in: 'query', required: r.query?.required?.includes(name) ?? false, schema })),
  ];
  const responses: Record<string, unknown> = { 401: unauthorized, 503: unconfirmed };
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

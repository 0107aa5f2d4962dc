// /api/openapi.json against what the admin listener really serves: every documented
// route answers (and its answer matches the documented schema), and every route that
// answers is documented.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { API_ROUTES } from '../../src/observe/api.js';
import { adminClient } from '../helpers/admin.js';
import { socksConnect, startEchoServer, startGateway } from '../helpers/index.js';

const addFormats = addFormatsModule.default;
const TOKEN = 'openapi-test-token-0001';
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

interface Operation {
  parameters?: Array<{ name: string; in: 'path' | 'query'; required: boolean }>;
  requestBody?: unknown;
  responses: Record<string, { content?: { 'application/json': { schema: Record<string, unknown> } } }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: Record<string, unknown>;
}

/** True when `path` is an instance of the template `/api/x/{param}/y`. */
function fits(template: string, path: string): boolean {
  const t = template.split('/');
  const p = path.split('/');
  return t.length === p.length && t.every((seg, i) => (seg.startsWith('{') ? p[i] !== '' : seg === p[i]));
}

test('the OpenAPI document and the routes served agree both ways', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    metrics: { host: '127.0.0.1', port: 0, api_token: TOKEN },
    upstreams: {
      corp: { type: 'socks5', host: '127.0.0.9', port: 1080 },
      crawl: { type: 'pool', members: ['socks5://127.0.0.71:1080', 'socks5://127.0.0.72:1080'] },
    },
    rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }],
  });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const docAnswer = await api.request('GET', '/api/openapi.json');
  assert.equal(docAnswer.status, 200);
  const doc = docAnswer.json as Document;
  assert.equal(doc.openapi, '3.1.0');

  // The router's own table and the document list the same operations.
  const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
  assert.deepEqual(documented.sort(), API_ROUTES.map((r) => `${r.method} ${r.path}`).sort());

  // Real values for the parameters: an open connection, a configured pool and member.
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000);
  t.after(() => socket.destroy());
  socket.write('x');
  await once(socket, 'data');
  const [conn] = (await api.request('GET', '/api/connections')).json as Array<{ id: number }>;
  assert.ok(conn);
  const values: Record<string, string> = { id: String(conn.id), pool: 'crawl', member: encodeURIComponent('socks5://127.0.0.71:1080'), host: '127.0.0.1', port: String(echo.port) };

  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  for (const [template, ops] of Object.entries(doc.paths)) {
    // Unban after ban, kill last: order the methods so each finds what it needs.
    for (const method of ['get', 'post', 'delete'].filter((m) => ops[m])) {
      const op = ops[method]!;
      let path = template.replace(/\{(\w+)\}/g, (_, name: string) => values[name] ?? 'x');
      const query = (op.parameters ?? []).filter((p) => p.in === 'query' && p.required).map((p) => `${p.name}=${values[p.name] ?? 'x'}`);
      if (query.length > 0) path += `?${query.join('&')}`;
      const r = await api.request(method.toUpperCase(), path, { body: op.requestBody ? { for: '1m' } : undefined });
      assert.ok(r.status !== 404 && r.status !== 405, `${method} ${path}: ${r.status} ${r.text}`);
      const documentedAnswer = op.responses[String(r.status)];
      assert.ok(documentedAnswer, `${method} ${path}: status ${r.status} is not documented`);
      const schema = documentedAnswer.content!['application/json'].schema;
      const validate = ajv.compile({ ...schema, components: doc.components });
      assert.ok(validate(r.json), `${method} ${path}: ${JSON.stringify(validate.errors)} in ${r.text}`);
    }
  }

  // Plausible routes that are not documented must not answer.
  const probes = [
    '/api', '/api/', '/api/connections', `/api/connections/${conn.id}`, '/api/connections/1/kill', '/api/upstreams', '/api/upstreams/crawl',
    '/api/upstreams/crawl/members', `/api/upstreams/crawl/members/${values.member}`, `/api/upstreams/crawl/members/${values.member}/ban`,
    '/api/upstreams/crawl/ban', '/api/route', '/api/reload', '/api/stats', '/api/metrics', '/api/config', '/api/health', '/api/healthz',
    '/api/openapi.json', '/api/openapi.yaml', '/api/openapi', '/api/users', '/api/pools', '/api/rules', '/api/version',
  ];
  for (const path of probes) {
    for (const method of METHODS) {
      const r = await api.request(method, path, { body: method === 'GET' || method === 'DELETE' ? undefined : { for: '1m' } });
      if (r.status === 404 || r.status === 405) continue;
      const inDoc = Object.entries(doc.paths).some(([template, ops]) => fits(template, path) && ops[method.toLowerCase()]);
      assert.ok(inDoc, `${method} ${path} answers ${r.status} but is not documented`);
    }
  }
});

test('every refusal of a request body is a documented status of every operation: a body it does not take, one too large, one not JSON', async (t) => {
  const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0, api_token: TOKEN } });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const doc = (await api.request('GET', '/api/openapi.json')).json as Document;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  const values: Record<string, string> = { id: '1', pool: 'p', member: 'm', host: '127.0.0.1', port: '80' };
  // node:http, as curl would: fetch sends no body with a GET.
  const send = (method: string, path: string, body: string, type: string): Promise<{ status: number; json: unknown }> =>
    new Promise((resolve, reject) => {
      const req = request(api.base + path, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': type, 'content-length': Buffer.byteLength(body) }, timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on("end", () => { const text = Buffer.concat(chunks).toString(); try { resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown }); } catch { reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`)); } });
      });
      req.on('timeout', () => req.destroy(new Error('no answer')));
      req.on('error', reject);
      req.end(body);
    });
  for (const [template, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      let path = template.replace(/\{(\w+)\}/g, (_, name: string) => values[name]!);
      const query = (op.parameters ?? []).filter((p) => p.in === 'query' && p.required).map((p) => `${p.name}=${values[p.name]}`);
      if (query.length > 0) path += `?${query.join('&')}`;
      const cases: Array<[string, string, number]> = [
        ['x'.repeat(17 * 1024), 'application/json', 413],
        ['for=1m', 'application/x-www-form-urlencoded', 415],
        // A route that takes a body gets one that does not fit it; one that takes none gets one.
        [op.requestBody ? '{"for": 1}' : '{}', 'application/json', 400],
      ];
      for (const [body, type, want] of cases) {
        const r = await send(method.toUpperCase(), path, body, type);
        assert.equal(r.status, want, `${method} ${path} with ${type}`);
        const documented = op.responses[String(r.status)];
        assert.ok(documented, `${method.toUpperCase()} ${template}: status ${r.status} is not documented`);
        const validate = ajv.compile({ ...documented.content!['application/json'].schema, components: doc.components });
        assert.ok(validate(r.json), `${method} ${path}: ${JSON.stringify(validate.errors)}`);
      }
    }
  }
});

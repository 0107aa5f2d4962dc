import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { SCHEMA_URL } from '../../src/config/validate.js';

const EXAMPLE = fileURLToPath(new URL('../../config.example.yaml', import.meta.url));
type SchemaNode = Record<string, unknown>;
const schema = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as SchemaNode;

/** Every subschema with where it sits, for structural assertions. */
function* subschemas(node: unknown, at = '#'): Generator<[string, SchemaNode]> {
  if (node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const [i, child] of node.entries()) yield* subschemas(child, `${at}/${i}`);
    return;
  }
  const s = node as SchemaNode;
  yield [at, s];
  for (const key of ['properties', '$defs']) {
    for (const [name, child] of Object.entries((s[key] as SchemaNode | undefined) ?? {})) yield* subschemas(child, `${at}/${key}/${name}`);
  }
  for (const key of ['items', 'additionalProperties', 'oneOf', 'anyOf']) yield* subschemas(s[key], `${at}/${key}`);
}

test('the schema is JSON Schema 2020-12', () => {
  assert.equal(schema['$schema'], 'https://json-schema.org/draft/2020-12/schema');
});

test('every property of the schema has a description (editors show them)', () => {
  for (const [at, s] of subschemas(schema)) {
    for (const [name, prop] of Object.entries((s['properties'] as SchemaNode | undefined) ?? {})) {
      assert.equal(typeof (prop as SchemaNode)['description'], 'string', `${at}/properties/${name} has no description`);
    }
  }
});

test('every object in the schema closes its keys (additionalProperties false or a value schema)', () => {
  for (const [at, s] of subschemas(schema)) {
    if (s['type'] !== 'object' || s['oneOf']) continue; // a discriminated union: each branch closes itself
    assert.ok('additionalProperties' in s, `${at} leaves additionalProperties open`);
  }
});

test('config.example.yaml validates without any environment and uses every top-level section', async () => {
  const config = await loadConfig({ path: EXAMPLE, env: {} });
  assert.equal(config.source, EXAMPLE);
  assert.ok(config.auth && config.metrics && config.dns.servers);
  const keys = Object.keys(parseDocument(readFileSync(EXAMPLE, 'utf8')).toJS() as object).sort();
  assert.deepEqual(keys, Object.keys(schema['properties'] as object).sort());
  assert.deepEqual(new Set(Object.values(config.upstreams).map((u) => u.type)), new Set(['socks5', 'http', 'pool']));
});

test('config.example.yaml takes its secrets from the environment when set', async () => {
  const config = await loadConfig({ path: EXAMPLE, env: { ALICE_PASSWORD: 'from-env' } });
  assert.equal(config.auth!.users.find((u) => u.username === 'alice')!.password, 'from-env');
});

// docs/configuration.md is generated from the schema (scripts/config-reference.ts): it must be
// current, and it must carry every key's description the schema has.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { REFERENCE_PATH, currentReference } from '../../scripts/config-reference.js';
import { SCHEMA_PATH } from '../../scripts/generated-file.js';

test('docs/configuration.md is what scripts/config-reference.ts makes of the current schema', async () => {
  const onDisk = await readFile(REFERENCE_PATH, 'utf8');
  assert.ok(onDisk === currentReference(), 'docs/configuration.md is out of date: run `npm run docs:config` and commit it');
});

test('every configuration key of the schema has a row with its description', async () => {
  const schema = JSON.parse(await readFile(SCHEMA_PATH, 'utf8')) as Record<string, unknown>;
  const doc = currentReference();
  const keys: Array<[string, string]> = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node === null || typeof node !== 'object') return;
    const props = (node as { properties?: Record<string, { description?: string }> }).properties;
    for (const [name, p] of Object.entries(props ?? {})) keys.push([name, p.description ?? '']);
    Object.values(node).forEach(walk);
  };
  walk(schema);
  assert.ok(keys.length > 80, `${keys.length} keys`);
  for (const [name, description] of keys) {
    assert.ok(description, `${name} has a description in the schema`);
    assert.ok(doc.includes(`.${name}\``) || doc.includes(`## \`${name}\``), `${name} has a row`);
    assert.ok(doc.includes(description.replace(/\|/g, '\\|')), `${name}: "${description}"`);
  }
});

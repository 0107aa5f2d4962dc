// src/config/schema-validator.ts is generated from the schema (scripts/schema-validator.ts): a
// schema change without it would validate configs against the schema as it was.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { VALIDATOR_PATH, currentValidatorSource } from '../../scripts/schema-validator.js';

test('src/config/schema-validator.ts is what scripts/schema-validator.ts makes of the current schema', async () => {
  const onDisk = await readFile(VALIDATOR_PATH, 'utf8');
  assert.ok(onDisk === currentValidatorSource(), 'src/config/schema-validator.ts is out of date: run `npm run schema:validator` and commit it');
});

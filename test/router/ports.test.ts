import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { parsePortEntry } from '../../src/config/ports.js';
import { portSetOf } from '../../src/router/ports.js';

test('single ports and inclusive ranges', () => {
  const set = portSetOf([80, '443', '8000-8999', '65535']);
  for (const yes of [80, 443, 8000, 8500, 8999, 65535]) assert.ok(set.has(yes), String(yes));
  for (const no of [0, 79, 81, 442, 7999, 9000, 65534]) assert.ok(!set.has(no), String(no));
});

test('bad port entries are explained', () => {
  assert.deepEqual(parsePortEntry(' 10 - 20 '), [10, 20]);
  for (const bad of [-1, 65536, 1.5, '70000', '20-10', 'http', '1-2-3', '']) {
    assert.equal(typeof parsePortEntry(bad), 'string', String(bad));
  }
});

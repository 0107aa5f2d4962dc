import { test } from 'node:test';
import assert from 'node:assert/strict';
import { interpolate } from '../../src/config/env.js';

test('variables, fallbacks and escapes', () => {
  const env = { A: 'alpha', EMPTY: '' };
  assert.deepEqual(interpolate('${A}', env), { value: 'alpha', problems: [] });
  assert.deepEqual(interpolate('x-${A}-${A}-y', env), { value: 'x-alpha-alpha-y', problems: [] });
  assert.deepEqual(interpolate('${NOPE:-fall back}', env), { value: 'fall back', problems: [] });
  assert.deepEqual(interpolate('${NOPE:-}', env), { value: '', problems: [] });
  assert.deepEqual(interpolate('${A:-unused}', env), { value: 'alpha', problems: [] });
  // `:-` as in the shell: an empty value takes the fallback; without one it stays empty.
  assert.deepEqual(interpolate('${EMPTY:-dflt}', env), { value: 'dflt', problems: [] });
  assert.deepEqual(interpolate('${EMPTY}', env), { value: '', problems: [] });
  assert.deepEqual(interpolate('$${A} $A plain', env), { value: '${A} $A plain', problems: [] });
});

test('unset variables and malformed expressions are problems at their index', () => {
  const unset = interpolate('ab${MISSING}', {});
  assert.equal(unset.problems.length, 1);
  assert.equal(unset.problems[0]!.index, 2);
  assert.match(unset.problems[0]!.message, /environment variable MISSING is not set/);
  assert.match(interpolate('${1BAD}', {}).problems[0]!.message, /invalid "\$\{1BAD\}"/);
  assert.match(interpolate('x ${OPEN', {}).problems[0]!.message, /unterminated/);
});

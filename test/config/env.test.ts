import { test } from '../helpers/test.js';
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
  // A password that holds "${" itself is told how to write it.
  assert.match(interpolate('pa${ss', {}, true).problems[0]!.message, /write "\$\$\{" for a literal "\$\{"/);
  assert.deepEqual(interpolate('pa$${ss', {}), { value: 'pa${ss', problems: [] });
});

test('a fallback may hold its own ${VAR}, as in the shell', () => {
  const env = { B: 'bee', EMPTY: '' };
  assert.deepEqual(interpolate('${A:-${B}}', env), { value: 'bee', problems: [] });
  assert.deepEqual(interpolate('x${A:-${C:-${B}}}y', env), { value: 'xbeey', problems: [] });
  assert.deepEqual(interpolate('${A:-${C:-last}}', env), { value: 'last', problems: [] });
  assert.deepEqual(interpolate('${A:-pre-${B}-post}', env), { value: 'pre-bee-post', problems: [] });
  assert.deepEqual(interpolate('${A:-$${B}}', env), { value: '${B}', problems: [] });
  assert.deepEqual(interpolate('${B:-${NOPE}}', env), { value: 'bee', problems: [] }); // the fallback is not needed
  const nested = interpolate('ab${A:-${NOPE}}', env);
  assert.equal(nested.value, 'ab');
  assert.deepEqual(nested.problems.map((p) => p.index), [7]);
  assert.match(nested.problems[0]!.message, /environment variable NOPE is not set/);
  assert.match(interpolate('${A:-${B}', env).problems[0]!.message, /unterminated/);
});

// The bench's median: the figure every table cell and ratio is built from.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { median } from '../../bench/report.js';

test('median of an odd count is the middle value, whatever the order', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([5]), 5);
});

test('median of an even count is the mean of the two middle values (a failed round leaves two)', () => {
  assert.equal(median([1, 3]), 2);
  assert.equal(median([10, 1, 4, 2]), 3);
});

test('median of nothing is an error, not undefined passed off as a number', () => {
  assert.throws(() => median([]), /no values/);
});

// The load generator's output as the bench reads it: a garbled line is an error of that run.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { parseFigures } from '../../bench/loadgen.js';

test('a line of numbers is read as figures', () => {
  assert.deepEqual(parseFigures('{"cycles":10,"per_s":2.5,"errors":0,"mismatches":0,"unfinished":0}'), {
    cycles: 10,
    per_s: 2.5,
    errors: 0,
    mismatches: 0,
    unfinished: 0,
  });
});

test('a line that is not JSON throws an error naming it', () => {
  assert.throws(() => parseFigures('loadgen: deadline passed'), /deadline passed.*not JSON/);
});

test('a value that is not a finite number is refused, not passed on as a figure', () => {
  assert.throws(() => parseFigures('{"MBps":"fast"}'), /MBps.*not a number/);
  assert.throws(() => parseFigures('{"MBps":null}'), /MBps.*not a number/);
  assert.throws(() => parseFigures('[1,2]'), /not an object/);
});

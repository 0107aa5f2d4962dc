// One request's wait for the primary, its questions asked in turn or at once, on a clock of the test's.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { LedgerWait } from '../../src/cluster/ledger-wait.js';

function waitOf(budget: number): { wait: LedgerWait; said: () => number; tick: (ms: number) => void } {
  let now = 1_000;
  let said = 0;
  const wait = new LedgerWait(budget, () => said++, () => now);
  return { wait, said: () => said, tick: (ms) => (now += ms) };
}

test('a question asked after another gets what is left of the wait, and the time between them is not waited', () => {
  const { wait, said, tick } = waitOf(2_000);
  assert.equal(wait.begin(), 2_000);
  tick(1_500);
  wait.answered();
  tick(10_000); // the login, say: no question in flight
  assert.equal(wait.begin(), 500);
  tick(200);
  wait.answered();
  assert.equal(said(), 0);
});

test('questions asked at once wait together, once', () => {
  const { wait, tick } = waitOf(2_000);
  assert.equal(wait.begin(), 2_000);
  assert.equal(wait.begin(), 2_000);
  tick(300);
  assert.equal(wait.begin(), 1_700, 'a third asked meanwhile waits what the first two still do');
  tick(100);
  for (let i = 0; i < 3; i++) wait.answered();
  assert.equal(wait.begin(), 1_600);
});

test('once a question went unanswered, the later ones are not asked, and that is said once', () => {
  const { wait, said, tick } = waitOf(2_000);
  wait.begin();
  wait.begin();
  tick(2_000);
  wait.timedOut();
  wait.timedOut();
  assert.equal(said(), 1);
  assert.equal(wait.begin(), 0);
  assert.equal(said(), 1);
});

test('a request that waited its whole time in answered questions asks no more, and does not say one went unanswered', () => {
  const { wait, said, tick } = waitOf(2_000);
  wait.begin();
  tick(1_999.5);
  wait.answered();
  assert.equal(wait.begin(), 0, 'under a millisecond left');
  assert.equal(wait.begin(), 0);
  assert.equal(said(), 0, 'every question asked was answered');
});

test('questions in flight that used up the wait between them: one more is not asked, and one that then times out is said', () => {
  const { wait, said, tick } = waitOf(2_000);
  wait.begin();
  tick(1_999.5);
  assert.equal(wait.begin(), 0, 'under a millisecond left');
  assert.equal(said(), 0);
  tick(0.5);
  wait.timedOut();
  assert.equal(said(), 1);
});

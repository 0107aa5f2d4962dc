import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { ByteBudget } from '../../src/outbound/byte-budget.js';

test('a child budget draws on its parent; closing it gives back what it still held', () => {
  const gateway = new ByteBudget(100);
  const a = new ByteBudget(80, gateway);
  const b = new ByteBudget(80, gateway);
  assert.equal(a.take(70), true);
  assert.equal(b.take(40), false, 'the parent has 30 left');
  assert.equal(b.used, 0, 'a refused take holds nothing');
  assert.equal(b.take(30), true);
  assert.equal(a.take(20), false, "a's own limit is 80");
  a.close(); // an association that ended with sends whose callbacks never came
  assert.equal(gateway.used, 30);
  a.give(70); // a late callback after close changes nothing
  assert.equal(gateway.used, 30);
  assert.equal(a.take(1), false, 'a closed budget takes nothing');
});

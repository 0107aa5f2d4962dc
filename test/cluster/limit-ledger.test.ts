// The primary's ledger fed messages in the order node can deliver them: a worker's 'exit' may
// be emitted before the last messages on its channel are read.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { LimitLedger } from '../../src/cluster/limit-ledger.js';
import type { LedgerToWorker } from '../../src/cluster/messages.js';

const LIMITS = { max: 3, window: 60_000, block: 300_000 };

/** A worker as the ledger sees it: its id (node's), and what it was told. */
interface Peer {
  id: number;
  told: LedgerToWorker[];
}

function ledgerOf(...live: Peer[]): { ledger: LimitLedger<Peer>; live: Peer[] } {
  const ledger = new LimitLedger<Peer>(() => LIMITS, (w, msg) => w.told.push(msg), () => live);
  return { ledger, live };
}

const peer = (id: number): Peer => ({ id, told: [] });

test('a slot asked for by a worker the ledger dropped is not counted: the share stays whole', () => {
  const a = peer(1);
  const b = peer(2);
  const { ledger } = ledgerOf(a, b);
  ledger.receive(a, { socksgate: 'take', id: 1, key: 'source 127.0.0.1', max: 2 });
  ledger.drop(a);
  // Read after the exit: the take and an adopt the worker sent before it died.
  ledger.receive(a, { socksgate: 'take', id: 2, key: 'source 127.0.0.1', max: 2 });
  ledger.receive(a, { socksgate: 'adopt', key: 'source 127.0.0.1', n: 3 });
  assert.equal(ledger.count('source 127.0.0.1'), 0, 'the dead worker holds nothing');
  assert.deepEqual(a.told.slice(1), [], 'and is answered nothing');
  for (const id of [1, 2]) ledger.receive(b, { socksgate: 'take', id, key: 'source 127.0.0.1', max: 2 });
  ledger.receive(b, { socksgate: 'take', id: 3, key: 'source 127.0.0.1', max: 2 });
  assert.deepEqual(b.told.map((m) => m.socksgate === 'taken' && m.ok), [true, true, false], 'the other worker has the whole share');
});

test("a bandwidth holding a dropped worker announces late is not counted: the other holder's share stays whole", () => {
  const a = peer(1);
  const b = peer(2);
  const { ledger } = ledgerOf(a, b);
  ledger.receive(b, { socksgate: 'holders?', id: 1, user: 'alice' });
  ledger.drop(a);
  ledger.receive(a, { socksgate: 'holders?', id: 1, user: 'alice' });
  ledger.receive(a, { socksgate: 'hold', user: 'alice', held: true });
  assert.equal(ledger.holders('alice'), 1, 'only the live worker holds');
  assert.deepEqual(b.told.filter((m) => m.socksgate === 'share').map((m) => m.socksgate === 'share' && m.holders), [1], 'its share never halves');
  assert.deepEqual(a.told, []);
});

test("a replacement with the dead worker's id is a worker of its own: what it takes is counted", () => {
  const dead = peer(1);
  const { ledger, live } = ledgerOf(dead);
  ledger.receive(dead, { socksgate: 'take', id: 1, key: 'user alice', max: 1 });
  ledger.drop(dead);
  const replacement = peer(1);
  live.splice(0, 1, replacement);
  ledger.receive(dead, { socksgate: 'take', id: 2, key: 'user alice', max: 1 });
  ledger.receive(replacement, { socksgate: 'take', id: 1, key: 'user alice', max: 1 });
  ledger.receive(replacement, { socksgate: 'hold', user: 'alice', held: true });
  assert.equal(ledger.count('user alice'), 1);
  assert.equal(ledger.holders('alice'), 1);
  ledger.receive(dead, { socksgate: 'give', key: 'user alice' });
  assert.equal(ledger.count('user alice'), 1, "the dead one's late give takes nothing back from it");
});

test('a failed login a worker counted before it died is still passed on: the client failed', () => {
  const a = peer(1);
  const b = peer(2);
  const { ledger } = ledgerOf(a, b);
  ledger.drop(a);
  ledger.receive(a, { socksgate: 'login-failed', source: '127.0.0.9' });
  assert.deepEqual(b.told, [{ socksgate: 'login-failed', source: '127.0.0.9' }]);
});

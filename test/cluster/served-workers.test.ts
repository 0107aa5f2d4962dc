// What the primary knows of each worker, fed messages in the order node can deliver them: a
// worker's 'exit' may be emitted before the last messages on its channel are read.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { ServedWorkers } from '../../src/cluster/served-workers.js';

/** A worker as the primary's roster sees it: its id (node's). */
interface Peer {
  id: number;
}

test('a ready read after a worker exited neither counts it as serving nor starts it off', () => {
  const readied: Peer[] = [];
  const roster = new ServedWorkers<Peer>((w) => readied.push(w));
  const dead: Peer = { id: 1 };
  assert.equal(roster.drop(dead), undefined, 'it never served');
  roster.receive(dead, { socksgate: 'ready' });
  assert.equal(roster.served(dead), false, 'the dead worker is not kept as serving');
  assert.deepEqual(readied, [], 'no bans or reload catch-up are sent to it');
});

test('an applied read after a worker exited keeps no token for it', () => {
  const roster = new ServedWorkers<Peer>(() => {});
  const dead: Peer = { id: 1 };
  roster.receive(dead, { socksgate: 'ready' });
  roster.receive(dead, { socksgate: 'applied', apiToken: 'old-token-0123456789', logLevel: 'info' });
  assert.equal(typeof roster.drop(dead), 'number', 'it had served');
  roster.receive(dead, { socksgate: 'applied', apiToken: 'new-token-0123456789', logLevel: 'info' });
  assert.equal(roster.hasToken(dead), false);
  assert.equal(roster.token(dead), undefined);
});

test("a replacement with the dead worker's id is a worker of its own: its ready and token count", () => {
  const readied: Peer[] = [];
  const roster = new ServedWorkers<Peer>((w) => readied.push(w));
  const dead: Peer = { id: 1 };
  roster.drop(dead);
  const replacement: Peer = { id: 1 };
  roster.receive(replacement, { socksgate: 'ready' });
  roster.receive(replacement, { socksgate: 'applied', apiToken: null, logLevel: 'info' });
  assert.equal(roster.served(replacement), true);
  assert.equal(roster.token(replacement), null);
  assert.deepEqual(readied, [replacement]);
});

test('messages that are no message of a worker change nothing', () => {
  const roster = new ServedWorkers<Peer>(() => assert.fail('not ready'));
  const w: Peer = { id: 1 };
  for (const msg of [null, 7, 'ready', [], { socksgate: 'applied', apiToken: 3 }, { socksgate: 'applied' }]) roster.receive(w, msg);
  assert.equal(roster.served(w), false);
  assert.equal(roster.hasToken(w), false);
});

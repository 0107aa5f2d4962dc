// The system backend's getaddrinfo calls share libuv's 4 threads with scrypt and file reads:
// at most 2 run at once, and one whose deadline passed while it waited never runs. A real
// getaddrinfo cannot be made to hang here without a name server on the network, so a stand-in
// plays it (a test instrument): each call waits until the test answers it.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { systemBackend, type SystemLookup } from '../../src/dns/backends.js';

test('at most 2 getaddrinfo calls run at once; one whose deadline passed while it waited is never made', async () => {
  const calls: Array<{ name: string; answer(): void }> = [];
  const held: SystemLookup = (name) =>
    new Promise((resolve) => calls.push({ name, answer: () => resolve([{ address: '127.0.0.1', family: 4 }]) }));
  const backend = systemBackend({ cache_size: 10, negative_ttl: 1_000, timeout: 200, prefer: 'ipv4', hosts: {} }, held);

  // Two hang (their name server never answers); eight more wait for a slot.
  const lookups = Array.from({ length: 10 }, (_, i) => backend.query(`n${i}.test`).then(() => 'ok', (e: Error) => e.message));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(calls.map((c) => c.name), ['n0.test', 'n1.test'], 'two calls made, the rest waiting');
  const outcomes = await Promise.all(lookups);
  assert.ok(outcomes.every((o) => /timeout/.test(o)), outcomes.join(', '));

  // The hung ones finally return: the slots free up, and the timed-out waiters are skipped.
  for (const c of calls.splice(0)) c.answer();
  const fresh = backend.query('fresh.test');
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(calls.map((c) => c.name), ['fresh.test'], 'none of the eight that timed out was ever made');
  calls[0]!.answer();
  assert.equal((await fresh).kind, 'positive');
});

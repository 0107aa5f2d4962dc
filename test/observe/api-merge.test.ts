// The workers' /api answers as one: what the primary of a cluster sends back.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mergeAnswers } from '../../src/observe/api-merge.js';
import type { ApiAnswer } from '../../src/observe/api.js';

const answer = (operation: string, body: unknown, status = 200): ApiAnswer => ({ status, body, operation });

test('connections from every worker, in id order; a kill is the answer of the worker that held it', () => {
  const merged = mergeAnswers([answer('listConnections', [{ id: 3 }, { id: 1 }]), answer('listConnections', [{ id: 2 }])], 2);
  assert.equal(merged.status, 200);
  assert.deepEqual(merged.body, [{ id: 1 }, { id: 2 }, { id: 3 }]);

  const missing = answer('killConnection', { error: 'no open connection 4' }, 404);
  assert.deepEqual(mergeAnswers([missing, answer('killConnection', { id: 4 })], 2), answer('killConnection', { id: 4 }));
  assert.deepEqual(mergeAnswers([missing, missing], 2), missing);
});

test('stats add up over the workers, rule by rule', () => {
  const a = { time: 10, connections: { open: 2, finished: 5 }, bytes: { up: 100, down: 1000 }, rules: [{ rule: 'lo', matches: 3, up: 60, down: 600 }] };
  const b = {
    time: 12,
    connections: { open: 1, finished: 4 },
    bytes: { up: 7, down: 70 },
    rules: [
      { rule: 'default', matches: 1, up: 1, down: 10 },
      { rule: 'lo', matches: 2, up: 6, down: 60 },
    ],
  };
  assert.deepEqual(mergeAnswers([answer('stats', a), answer('stats', b)], 2).body, {
    time: 12,
    connections: { open: 3, finished: 9 },
    bytes: { up: 107, down: 1070 },
    rules: [
      { rule: 'lo', matches: 5, up: 66, down: 660 },
      { rule: 'default', matches: 1, up: 1, down: 10 },
    ],
  });
});

test('upstreams: counts added, healthy only where every worker finds it so, a ban only where every worker holds one', () => {
  const member = (over: Record<string, unknown>): Record<string, unknown> => ({
    name: 'socks5://127.0.0.61:1080',
    healthy: true,
    active: 1,
    attempts: 10,
    failures: 1,
    latency_ms: 20,
    banned_until: null,
    ejected_for_ms: 0,
    consecutive_failures: 0,
    ...over,
  });
  const view = (m: Record<string, unknown>, healthyUpstream: boolean): unknown => ({
    upstreams: [{ name: 'corp', type: 'socks5', healthy: healthyUpstream, active: 2, attempts: 3, failures: 0, latency_ms: null }],
    pools: [{ name: 'crawl', strategy: 'round-robin', members: [m] }],
  });
  const later = '2026-12-03T20:00:00.000Z';
  const sooner = '2026-12-03T19:00:00.000Z';
  const merged = mergeAnswers([
    answer('listUpstreams', view(member({ banned_until: later, latency_ms: 10, consecutive_failures: 2 }), true)),
    answer('listUpstreams', view(member({ banned_until: sooner, healthy: false, ejected_for_ms: 5000 }), false)),
  ], 3);
  assert.deepEqual(merged.body, {
    upstreams: [{ name: 'corp', type: 'socks5', healthy: false, active: 4, attempts: 6, failures: 0, latency_ms: null }],
    pools: [
      {
        name: 'crawl',
        strategy: 'round-robin',
        members: [member({ healthy: false, active: 2, attempts: 20, failures: 2, latency_ms: 15, banned_until: sooner, ejected_for_ms: 5000, consecutive_failures: 2 })],
      },
    ],
  });
  // Sub-millisecond latencies (loopback, a LAN) are the workers' mean as one process gives it, not rounded to 0.
  const fast = mergeAnswers([answer('listUpstreams', view(member({ latency_ms: 0.25 }), true)), answer('listUpstreams', view(member({ latency_ms: 0.5 }), true))], 2);
  assert.equal((fast.body as { pools: Array<{ members: Array<{ latency_ms: unknown }> }> }).pools[0]!.members[0]!.latency_ms, 0.375);
  const halfBanned = mergeAnswers([answer('listUpstreams', view(member({ banned_until: later }), true)), answer('listUpstreams', view(member({}), true))], 2);
  assert.equal((halfBanned.body as { pools: Array<{ members: Array<{ banned_until: unknown }> }> }).pools[0]!.members[0]!.banned_until, null);
});

test('a ban, an unban or a reload refused by any worker is the answer; no worker answering is a 503', () => {
  const done = answer('reload', { result: 'ok' });
  const rejected = answer('reload', { result: 'rejected' }, 422);
  assert.deepEqual(mergeAnswers([done, rejected], 2), rejected);
  assert.deepEqual(mergeAnswers([done, done], 2), done);
  assert.equal(mergeAnswers([], 0).status, 503);
  const route = answer('explainRoute', { rule: 'lo', action: 'direct', index: 0 });
  assert.deepEqual(mergeAnswers([route, route], 2), route);
});

test('a worker that did not answer: reads say how many they cover, a change or a kill not confirmed is a 503', () => {
  const listed = mergeAnswers([answer('listConnections', [{ id: 1 }])], 2);
  assert.equal(listed.status, 200);
  assert.equal(listed.headers?.['x-socksgate-workers'], '1/2');
  assert.equal(mergeAnswers([answer('stats', { connections: { open: 1 } }), answer('stats', {})], 2).headers?.['x-socksgate-workers'], '2/2');
  for (const op of ['banMember', 'unbanMember', 'reload']) {
    const partial = mergeAnswers([answer(op, { ok: true })], 3);
    assert.equal(partial.status, 503, op);
    assert.match(JSON.stringify(partial.body), /1 of 3 workers/);
  }
  const notHere = answer('killConnection', { error: 'no open connection 5' }, 404);
  assert.equal(mergeAnswers([notHere], 2).status, 503, 'the other worker might hold it');
  assert.deepEqual(mergeAnswers([answer('killConnection', { id: 5 })], 2), answer('killConnection', { id: 5 }));
});

// The admin listener on its own, with a source made for the test: what it does when the
// source fails and when the listener itself reports an error.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { MetricsConfig } from '../../src/config/types.js';
import { startAdmin, type AdminSource } from '../../src/observe/admin.js';

const LISTEN: MetricsConfig = { host: '127.0.0.1', port: 0, per_user: false };

function recordingSource(overrides: Partial<AdminSource> = {}): { source: AdminSource; lines: Array<Record<string, unknown>>; failures: () => number } {
  const lines: Array<Record<string, unknown>> = [];
  let failures = 0;
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const source: AdminSource = {
    apiToken: () => undefined,
    metrics: async () => ({ body: 'm 1\n', type: 'text/plain' }),
    notReady: () => undefined,
    api: async () => {
      throw new Error('no /api here');
    },
    log,
    failed: () => void failures++,
    ...overrides,
  };
  return { source, lines, failures: () => failures };
}

test('a source that throws is a JSON 500, counted and logged; the listener keeps serving', async (t) => {
  const { source, lines, failures } = recordingSource({
    metrics: async () => {
      throw new Error('registry broke');
    },
  });
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), { error: 'internal error' });
  assert.equal(failures(), 1);
  assert.equal(lines.find((l) => l.msg === 'admin request failed')?.url, '/metrics');
  assert.equal((await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5_000) })).status, 200);
});

test('/readyz says why it is not ready', async (t) => {
  const { source } = recordingSource({ notReady: () => 'starting' });
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`, { signal: AbortSignal.timeout(5_000) });
  assert.deepEqual([res.status, await res.text()], [503, 'starting\n']);
});

test('an error the listener reports after it listens (a failed accept) is logged, not thrown', async (t) => {
  const { source, lines, failures } = recordingSource();
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const err = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' });
  // Without a listener, emitting 'error' throws here (and would be an uncaught exception).
  assert.doesNotThrow(() => server.emit('error', err));
  assert.equal(failures(), 1);
  assert.equal(lines.find((l) => l.msg === 'admin listener error')?.err !== undefined, true);
  assert.equal((await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`, { signal: AbortSignal.timeout(5_000) })).status, 200);
});

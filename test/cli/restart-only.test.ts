// What a reload says waits for a restart: listeners compared by address, not by their place in the list.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { startedWith, warnRestartOnly } from '../../src/restart-only.js';
import { memoryLogger } from '../helpers/index.js';

const withListeners = (listen: Array<Record<string, unknown>>): Config => parseConfig(stringify({ listen }), '/tmp/socksgate-test.yaml', {});

test('a reload listing the same listeners in another order warns of nothing; a changed setting names its listener', async () => {
  const a = { host: '127.0.0.1', port: 1080 };
  const b = { host: '127.0.0.1', port: 1081 };
  const { log, logs } = memoryLogger();
  const started = startedWith(withListeners([a, b]));

  warnRestartOnly(log, started, withListeners([b, a]));
  await turn();
  assert.deepEqual(logs.map((l) => l['msg']), [], 'the listeners running are the ones the file names');

  warnRestartOnly(log, started, withListeners([{ ...b, protocols: ['socks5'] }, a]));
  await turn();
  assert.deepEqual(logs.map((l) => [l['msg'], l['listeners']]), [['listener settings changed: they apply after a restart', ['127.0.0.1:1081 protocols']]]);
});

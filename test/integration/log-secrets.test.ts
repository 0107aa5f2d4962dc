import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observe/logger.js';
import { closedPort, socksConnect } from '../helpers/index.js';

test('an upstream error from the socks package, logged with its options, shows no password', async () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug' }, new Writable({ write: (c: Buffer, _e, done) => (lines.push(c.toString()), done()) }));
  const port = await closedPort();
  const err = await socksConnect(port, { host: 'example.com', port: 80 }, 2_000, { userId: 'gw', password: 'upstream-secret' }).catch((e: unknown) => e);
  assert.ok(err instanceof Error);
  log.debug({ err }, 'upstream failed');
  log.debug({ err: new Error('wrapped', { cause: err }) }, 'upstream failed again');
  log.info({ password: 'plain-secret', password_hash: 'scrypt$x' }, 'credential object');
  await new Promise((r) => setImmediate(r));
  const text = lines.join('');
  assert.ok(text.includes('upstream failed'));
  for (const secret of ['upstream-secret', 'plain-secret', 'scrypt$x']) assert.ok(!text.includes(secret), `${secret} leaked: ${text}`);
});

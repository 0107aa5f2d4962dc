// --watch: which files a config reloads on, and that a change to them is seen.
import { test } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EMBEDDED_SOURCE, loadConfig } from '../../src/config/load.js';
import { ConfigWatcher, watchedFiles } from '../../src/config/watch.js';

test('with the embedded default, --watch waits for ./socksgate.yaml, the file a reload would load', async (t) => {
  const dir = await tempDir('watch');
  const config = await loadConfig({ cwd: dir, env: {} });
  assert.equal(config.source, EMBEDDED_SOURCE);
  assert.deepEqual(watchedFiles(config), [join(dir, 'socksgate.yaml')]);

  let changed!: () => void;
  const seen = new Promise<void>((resolve) => (changed = resolve));
  const watcher = new ConfigWatcher(() => changed());
  t.after(() => watcher.close());
  watcher.watch(config);
  // The watches and their debounce timer do not hold the process open (the gateway's sockets do).
  const alive = setInterval(() => {}, 1_000);
  t.after(() => clearInterval(alive));
  await writeFile(join(dir, 'socksgate.yaml'), 'listen: [{ host: 127.0.0.1, port: 0 }]\n');
  await seen;
  assert.equal((await loadConfig({ cwd: dir, env: {} })).source, join(dir, 'socksgate.yaml'));
});

test('--watch follows an https upstream\'s ca file, which each build reads: a rotated CA is trusted without a SIGHUP', async () => {
  const dir = await tempDir('watch-ca');
  const path = join(dir, 'socksgate.yaml');
  await writeFile(path, 'upstreams:\n  corp: { type: http, host: 10.0.0.1, port: 443, tls: true, ca: certs/corp-ca.pem }\ndefault: corp\n');
  const config = await loadConfig({ path, env: {} });
  assert.deepEqual(watchedFiles(config), [path, join(dir, 'certs', 'corp-ca.pem')]);
});

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

test('--watch holds a reload while a watched file is empty mid-write (truncated, written later), and not for ever', async (t) => {
  const dir = await tempDir('watch-empty');
  const path = join(dir, 'socksgate.yaml');
  const list = join(dir, 'blocked.txt');
  await writeFile(path, 'rules:\n  - { name: blocked, domains_file: blocked.txt, action: block }\n');
  await writeFile(list, 'ads.example\n');
  const config = await loadConfig({ path, env: {} });
  const reloads: number[] = [];
  let reloaded: () => void = () => {};
  const watcher = new ConfigWatcher(() => {
    reloads.push(Date.now());
    reloaded();
  });
  t.after(() => watcher.close());
  watcher.watch(config);
  const next = (): Promise<void> => new Promise((resolve) => (reloaded = resolve));
  const alive = setInterval(() => {}, 1_000); // the watches do not hold the process open
  t.after(() => clearInterval(alive));

  // `generate > blocked.txt`: truncated at once, written 600 ms later (past the settle delay).
  // Reloading in between would apply an empty block list: nothing blocked for a moment.
  let seen = next();
  await writeFile(list, '');
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(reloads.length, 0, 'no reload while the list is empty');
  await writeFile(list, 'ads.example\ntracker.example\n');
  await seen;
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(reloads.length, 1, 'one reload once it is written');

  // Emptied on purpose and left so: reloaded after the hold, not missed.
  seen = next();
  const emptied = Date.now();
  await writeFile(list, '');
  await seen;
  assert.ok(Date.now() - emptied >= 1_500, 'held for a while first');
  assert.equal(reloads.length, 2);
});

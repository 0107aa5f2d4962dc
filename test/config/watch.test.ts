// --watch: which files a config reloads on, and that a change to them is seen.
import { test } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
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

/** A Kubernetes ConfigMap volume: `name -> ..data/name`, `..data -> ..TIMESTAMP/`. */
async function configMapVolume(dir: string, files: Record<string, string>): Promise<(next: Record<string, string>) => Promise<void>> {
  let n = 0;
  let current = '';
  const publish = async (next: Record<string, string>): Promise<void> => {
    // As kubelet's AtomicWriter: a new timestamped directory, `..data_tmp` renamed over `..data`, the old one removed.
    const stamp = `..2026_12_05_10_00_0${n++}.000000001`;
    await mkdir(join(dir, stamp));
    for (const [name, text] of Object.entries(next)) await writeFile(join(dir, stamp, name), text);
    await symlink(stamp, join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    if (current) await rm(join(dir, current), { recursive: true });
    current = stamp;
  };
  await publish(files);
  for (const name of Object.keys(files)) await symlink(join('..data', name), join(dir, name));
  return publish;
}

test('--watch sees a ConfigMap update that lands while the last one is being reloaded', async (t) => {
  const dir = await tempDir('watch-configmap');
  const path = join(dir, 'socksgate.yaml');
  const yaml = (n: number): string => `rules:\n  - { name: r${n}, domains_file: blocked.txt, action: block }\n`;
  const publish = await configMapVolume(dir, { 'socksgate.yaml': yaml(0), 'blocked.txt': 'ads.example\n' });
  let config = await loadConfig({ path, env: {} });
  const alive = setInterval(() => {}, 1_000);
  t.after(() => clearInterval(alive));
  let reloads = 0;
  let reloaded: () => void = () => {};
  const next = (): Promise<void> => new Promise((resolve) => (reloaded = resolve));
  let during: (() => Promise<void>) | undefined;
  const watcher = new ConfigWatcher(() => {
    reloads++;
    // The reload reads the files, and the watches are armed again once it is done.
    void (async () => {
      config = await loadConfig({ path, env: {} });
      await during?.();
      during = undefined;
      watcher.watch(config);
      reloaded();
    })();
  });
  t.after(() => watcher.close());
  watcher.watch(config);

  let seen = next();
  // The second update lands after the first one's reload read the files, before it re-armed.
  during = () => publish({ 'socksgate.yaml': yaml(2), 'blocked.txt': 'ads.example\n' });
  await publish({ 'socksgate.yaml': yaml(1), 'blocked.txt': 'ads.example\n' });
  await seen;
  assert.equal(config.rules[0]?.name, 'r1');
  seen = next();
  const missed = new Promise<void>((resolve) => setTimeout(resolve, 2_000).unref());
  await Promise.race([seen, missed]);
  assert.equal(reloads, 2, 'the second update is reloaded too');
  assert.equal(config.rules[0]?.name, 'r2');

  // And later updates, one at a time, once each.
  for (const n of [3, 4, 5]) {
    seen = next();
    await publish({ 'socksgate.yaml': yaml(n), 'blocked.txt': `ads${n}.example\n` });
    await seen;
    assert.equal(config.rules[0]?.name, `r${n}`);
  }
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(reloads, 5);
});

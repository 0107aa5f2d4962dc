// Every input a fuzzing run ever flagged (fuzz/regressions/TARGET) and every seed
// (fuzz/seeds/TARGET), replayed through the same targets `npm run fuzz` drives: each
// must now pass the target's properties.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { parseMemberUrl } from '../../src/config/member-url.js';

const FUZZ = fileURLToPath(new URL('../../fuzz/', import.meta.url));
const TARGETS = readdirSync(join(FUZZ, 'targets'))
  .filter((f) => f.endsWith('.fuzz.ts'))
  .map((f) => f.slice(0, -'.fuzz.ts'.length));

function inputs(target: string): string[] {
  const files: string[] = [];
  for (const dir of ['regressions', 'seeds']) {
    try {
      for (const f of readdirSync(join(FUZZ, dir, target))) files.push(join(FUZZ, dir, target, f));
    } catch {
      // no such directory: nothing kept for this target yet
    }
  }
  return files;
}

test('every fuzz target has seeds to start from', () => {
  assert.deepEqual(TARGETS.sort(), ['config', 'member-url', 'members-file', 'proxy-header', 'socks4', 'socks5', 'udp-header']);
  for (const t of TARGETS) assert.ok(inputs(t).length > 0, `${t} has inputs`);
});

for (const target of TARGETS) {
  test(`fuzz regressions and seeds of ${target} pass`, async () => {
    const mod = (await import(`../../fuzz/targets/${target}.fuzz.ts`)) as { fuzz: (data: Buffer) => void };
    for (const file of inputs(target)) {
      assert.doesNotThrow(() => mod.fuzz(readFileSync(file)), `${target}: ${file}`);
    }
  });
}

test('an alias without its anchor is a config error with its position, not a crash', () => {
  assert.throws(
    () => parseConfig('listen:\n  - *nope\n', '/x/socksgate.yaml', {}),
    (err: unknown) => err instanceof ConfigError && /^\/x\/socksgate\.yaml:2:5: an alias \(\*NAME\) names no anchor/.test(err.issues[0] ?? ''),
  );
});

test('bad percent-encoding in a member URL is refused naming the problem, without the password', () => {
  assert.throws(
    () => parseMemberUrl('socks5://us%zzer:hunter2@127.0.0.1:1080'),
    (err: unknown) => err instanceof Error && err.constructor === Error && /bad percent-encoding/.test(err.message) && !err.message.includes('hunter2'),
  );
});

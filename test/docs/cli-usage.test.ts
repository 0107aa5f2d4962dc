// README.md's "Command line" block is the usage people read before they run anything: it
// shows the commands and options `socksgate --help` prints, and names every short form.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { runCli } from '../helpers/cli.js';

/** A usage line without its explanation: what comes before two or more spaces. */
const synopsis = (line: string): string => line.trim().replace(/ {2,}.*$/, '');

test("README's Command line block shows the commands and options of `socksgate --help`", async () => {
  const readme = await readFile('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## Command line'));
  const block = /^```\n([\s\S]*?)^```/m.exec(section)?.[1];
  assert.ok(block, 'a usage block under "## Command line"');
  const documented = block.split('\n').filter((l) => l.startsWith('socksgate')).map(synopsis);

  const help = await runCli(['--help']);
  assert.equal(help.code, 0, help.stderr);
  const printed = help.stdout.split('\n').filter((l) => l.startsWith('  socksgate')).map(synopsis);
  assert.ok(printed.length >= 5, help.stdout);

  // --help itself is told of in the prose under the block, not as a line of its own.
  for (const s of printed) {
    if (s === 'socksgate --help') assert.match(section, /`--help` \(`-h`\)/);
    else assert.ok(documented.includes(s), `"${s}" (from --help) is not in the README's block`);
  }
  for (const s of documented) assert.ok(printed.includes(s), `"${s}" (README) is not what --help prints`);
  // Every short form --help names is in the README too.
  const shorts = /^short forms: (.*)$/m.exec(help.stdout)?.[1];
  assert.ok(shorts, help.stdout);
  for (const m of shorts.matchAll(/(-\w)(?: FILE)? \((--\w+)\)/g)) {
    assert.ok(section.includes(`\`${m[1]}`), `${m[1]} (short for ${m[2]}) is in the README`);
  }
});

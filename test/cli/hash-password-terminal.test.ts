// hash-password at a terminal (a pseudo-terminal the test types at): the password asked twice
// and hidden, edited as a shell's line is, Ctrl-C a cancel. From a pipe: check-route.test.ts.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createAuthenticator } from '../../src/server/auth.js';
import { CLI } from '../helpers/cli.js';
import { requireFile } from '../helpers/spawn.js';

const TYPE = fileURLToPath(new URL('../helpers/type-on-terminal.py', import.meta.url));
const PYTHON = requireFile('/usr/bin/python3', 'python3');

interface Typed {
  shown: string;
  code: number | null;
}

/** Runs hash-password on a terminal, typing `steps` ([wait for this, then type that]) at it. */
function typeAt(steps: ReadonlyArray<readonly [string, string]>): Promise<Typed> {
  const command = [process.execPath, '--import', 'tsx', CLI, 'hash-password'];
  return new Promise((resolve, reject) => {
    execFile(PYTHON, [TYPE, JSON.stringify(command), JSON.stringify(steps)], { timeout: 120_000 }, (err, stdout) => {
      if (err) return reject(err);
      resolve(JSON.parse(stdout) as Typed);
    });
  });
}

function hashIn(shown: string): string | undefined {
  return /scrypt\$[^\s]+/.exec(shown)?.[0];
}

async function logsIn(hash: string, password: string): Promise<boolean> {
  const auth = createAuthenticator({ users: [{ username: 'carol', password_hash: hash }], allow_anonymous: false });
  return (await auth.verify('carol', password)).ok;
}

test('at a terminal the password is asked twice, not echoed, and the hash printed logs it in', { timeout: 150_000 }, async () => {
  const r = await typeAt([
    ['Password: ', 'correct horse\r'],
    ['Again: ', 'correct horse\r'],
  ]);
  assert.equal(r.code, 0, r.shown);
  assert.ok(!r.shown.includes('correct horse'), `the password was echoed: ${r.shown}`);
  const hash = hashIn(r.shown);
  assert.ok(hash, r.shown);
  assert.equal(await logsIn(hash, 'correct horse'), true);
  assert.equal(await logsIn(hash, 'correct horse\r'), false, 'the Enter key is no part of it');
});

test('two entries that differ: nothing printed, exit 1', { timeout: 150_000 }, async () => {
  const r = await typeAt([
    ['Password: ', 'correct horse\r'],
    ['Again: ', 'correct hrose\r'],
  ]);
  assert.equal(r.code, 1, r.shown);
  assert.match(r.shown, /the two entries differ/);
  assert.equal(hashIn(r.shown), undefined);
});

test('line editing: Backspace takes back a whole emoji, Ctrl-U the line, arrow keys are no part of the password', { timeout: 150_000 }, async () => {
  // "x😀" then Backspace leaves "x"; a line typed then Ctrl-U is gone; ← and → are dropped.
  const keys = 'wrong\u0015' + 'pa\u001b[Dss\u001b[C' + 'x😀\u007f' + '\r';
  const r = await typeAt([
    ['Password: ', keys],
    ['Again: ', 'passx\r'],
  ]);
  assert.equal(r.code, 0, r.shown);
  const hash = hashIn(r.shown);
  assert.ok(hash, r.shown);
  assert.equal(await logsIn(hash, 'passx'), true, 'the password is what the line shows after editing');
});

test('Ctrl-C at the prompt cancels: nothing printed, exit 130 as a shell reports an interrupted program', { timeout: 150_000 }, async () => {
  const r = await typeAt([['Password: ', 'abc\u0003']]);
  assert.equal(r.code, 130, r.shown);
  assert.equal(hashIn(r.shown), undefined);
});

test('an Enter that sends CR LF (a terminal in newline mode, a pasted Windows line) ends one line, not two', { timeout: 150_000 }, async () => {
  const r = await typeAt([
    ['Password: ', 'correct horse\r\n'],
    ['Again: ', 'correct horse\r\n'],
  ]);
  assert.equal(r.code, 0, r.shown);
  const hash = hashIn(r.shown);
  assert.ok(hash, r.shown);
  assert.equal(await logsIn(hash, 'correct horse'), true);
});

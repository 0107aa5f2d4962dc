// Child processes that cannot outlive the test file that started them.
//
// The runner may cancel a file by killing its process (a file timeout, ^C): `t.after` never
// runs then, and a gateway, danted or microsocks would keep its port and its CPU. Every
// child is started under setpriv(1) with a parent-death signal (prctl PR_SET_PDEATHSIG,
// kept across execve), so the kernel kills it when this process goes, however it goes.
// setpriv execs the command in place: the pid we hold is the command's own.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';

const SETPRIV = '/usr/bin/setpriv';

/** spawn(cmd, args, opts), tied to this process's life. Throws naming setpriv when it is missing. */
export function spawnTied(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  if (!existsSync(SETPRIV)) throw new Error(`${SETPRIV} (util-linux) is required to tie test processes to the test file`);
  return spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', cmd, ...args], opts);
}

/** Fails with a message naming `path` (and its Debian package) when a prerequisite is missing. */
export function requireFile(path: string, pkg: string): string {
  if (!existsSync(path)) throw new Error(`missing prerequisite ${path} (Debian package ${pkg})`);
  return path;
}

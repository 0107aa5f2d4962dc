// Child processes that cannot outlive the test file that started them.
//
// The runner may cancel a file by killing its process (a file timeout, ^C): `t.after` never
// runs then, and a gateway, danted or microsocks would keep its port and its CPU. Every
// child is started under setpriv(1) with a parent-death signal (prctl PR_SET_PDEATHSIG,
// kept across execve), so the kernel kills it when this process goes, however it goes.
// setpriv execs the command in place: the pid we hold is the command's own. A daemon that
// changes its user loses that signal: spawnTiedDaemon adds a watchdog for it.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';

const SETPRIV = '/usr/bin/setpriv';

/** spawn(cmd, args, opts), tied to this process's life. Throws naming setpriv when it is missing. */
export function spawnTied(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  if (!existsSync(SETPRIV)) throw new Error(`${SETPRIV} (util-linux) is required to tie test processes to the test file`);
  return spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', cmd, ...args], opts);
}

/**
 * spawnTied for a daemon that changes its user (danted, tinyproxy and squid drop to nobody):
 * the kernel clears a parent-death signal when a process changes its effective user
 * (prctl(2)), so it would outlive this process. A watchdog shell reads a pipe from this
 * process and kills the daemon at its end, which comes however this process goes; it is
 * killed itself once the daemon has exited, so it never signals a pid used again.
 */
export function spawnTiedDaemon(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawnTied(cmd, args, opts);
  if (child.pid === undefined) return child; // not started: 'error' says why
  const dog = spawn('/bin/sh', ['-c', 'read _; kill -KILL "$0" 2>/dev/null', String(child.pid)], { stdio: ['pipe', 'ignore', 'ignore'] });
  dog.on('error', () => {});
  // Neither the watchdog nor its pipe keeps this process running.
  dog.unref();
  (dog.stdin as Socket | null)?.unref(); // a pipe to a child is a net.Socket
  child.once('exit', () => dog.kill('SIGKILL'));
  return child;
}

/** Fails with a message naming `path` (and its Debian package) when a prerequisite is missing. */
export function requireFile(path: string, pkg: string): string {
  if (!existsSync(path)) throw new Error(`missing prerequisite ${path} (Debian package ${pkg})`);
  return path;
}

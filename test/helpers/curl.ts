import { execFile } from 'node:child_process';
import { requireFile } from './spawn.js';

export interface CurlResult {
  code: number; // curl's exit code (0 ok, 97 proxy handshake failed, …)
  stdout: string;
  stderr: string;
}

/**
 * Runs the real curl binary; the exit code tells how it went. Throws when curl is missing: a
 * test asserting a failure must not pass because curl never ran.
 */
export function curl(args: readonly string[], timeoutMs = 10_000): Promise<CurlResult> {
  const bin = requireFile('/usr/bin/curl', 'curl');
  return new Promise((resolve) => {
    execFile(bin, ['--silent', '--show-error', '--max-time', String(timeoutMs / 1000), ...args], { timeout: timeoutMs + 2_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

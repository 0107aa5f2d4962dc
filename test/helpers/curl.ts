import { execFile } from 'node:child_process';

export interface CurlResult {
  code: number; // curl's exit code (0 ok, 97 proxy handshake failed, …)
  stdout: string;
  stderr: string;
}

/** Runs the real curl binary; never rejects, the exit code tells. */
export function curl(args: readonly string[], timeoutMs = 10_000): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['--silent', '--show-error', '--max-time', String(timeoutMs / 1000), ...args], { timeout: timeoutMs + 2_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

// A fault injector for tests, preloaded with `--import` into a real CLI process (see
// startCliGateway's `preload`): the first time the process reads a file named
// socksgate.yaml it sends itself a SIGTERM, as a `docker stop` or a pod deletion arrives
// while the gateway is still starting. The product never loads it.
import { syncBuiltinESMExports } from 'node:module';
import fs from 'node:fs/promises';

const readFile = fs.readFile;
let sent = false;
fs.readFile = ((...args: Parameters<typeof readFile>) => {
  if (!sent && String(args[0]).endsWith('socksgate.yaml')) {
    sent = true;
    process.kill(process.pid, 'SIGTERM');
  }
  return readFile(...args);
}) as typeof readFile;
// The CLI imports { readFile } from node:fs/promises: its binding follows the patched one.
syncBuiltinESMExports();

// Scratch directories for config files, lists and keys: removed when the test file's process
// exits, whatever the tests in it did.

import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
process.on('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory under the system's temp directory, named `socksgate-<prefix>-…`. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `socksgate-${prefix}-`));
  made.push(dir);
  return dir;
}

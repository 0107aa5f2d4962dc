// The command line of a script that generates a committed file from the schema: write it, or
// with `--check` exit 1 when the file on disk is not what it would write.

import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What the generated files are made from. */
export const SCHEMA_PATH = fileURLToPath(new URL('../schemas/config.schema.json', import.meta.url));

export function writeOrCheck(path: string, text: string, command: string): void {
  const shown = relative(process.cwd(), path);
  if (!process.argv.includes('--check')) {
    writeFileSync(path, text);
    console.log(`wrote ${shown}`);
    return;
  }
  let onDisk = '';
  try {
    onDisk = readFileSync(path, 'utf8');
  } catch {
    // missing counts as out of date
  }
  if (onDisk !== text) {
    console.error(`${shown} is out of date: run \`${command}\``);
    process.exit(1);
  }
}

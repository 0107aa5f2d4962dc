// `npm run bench [name ...]`: runs every benchmark file (or the named ones) in turn.
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const files = (await readdir(here)).filter((f) => f.endsWith('.ts') && !['run.ts', 'lib.ts', 'processes.ts', 'minimal-relay-main.ts'].includes(f)).sort();
for (const file of files) {
  const name = file.replace(/\.ts$/, '');
  if (wanted.length > 0 && !wanted.includes(name)) continue;
  const mod = (await import(`./${file}`)) as { run?: () => Promise<void> };
  if (typeof mod.run !== 'function') continue;
  console.log(`\n## ${name}`);
  await mod.run();
}

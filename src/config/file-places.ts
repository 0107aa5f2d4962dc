// Where the config names each file it has read later (a rule's domains_file and cidrs_file, a
// pool's members_file, an http upstream's ca). A file that cannot be read has no line of its own
// to point at: that error is reported at the config line naming it, CONFIG:LINE:COL like every
// other config error (a file that was read keeps FILE:LINE:COL for its own bad lines).

import { pathText, type ConfigPath, type SourceLocator } from './positions.js';
import type { Config } from './types.js';

/** Per config parsed from text: `rules[0].domains_file` → `LINE:COL`. */
const places = new WeakMap<Config, ReadonlyMap<string, string>>();

/** Notes where `config`, just parsed, names each file it reads. */
export function recordFilePlaces(config: Config, locator: SourceLocator): void {
  const at = new Map<string, string>();
  const note = (path: ConfigPath): void => {
    at.set(pathText(path), locator.position(locator.offsetOf({ path, message: '' })));
  };
  config.rules.forEach((rule, i) => {
    if (rule.domains_file !== undefined) note(['rules', i, 'domains_file']);
    if (rule.cidrs_file !== undefined) note(['rules', i, 'cidrs_file']);
  });
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    if (upstream.type === 'pool' && upstream.members_file !== undefined) note(['upstreams', name, 'members_file']);
    if (upstream.type === 'http' && upstream.ca !== undefined) note(['upstreams', name, 'ca']);
  }
  places.set(config, at);
}

/**
 * `CONFIG:LINE:COL: PATH: cannot read FILE (CODE)` for a file the config names at `path`;
 * `CONFIG: PATH: …` for a config that was not parsed from text.
 */
export function cannotRead(config: Config, path: ConfigPath, file: string, err: unknown): string {
  const key = pathText(path);
  const at = places.get(config)?.get(key);
  const reason = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
  return `${config.source}${at === undefined ? '' : `:${at}`}: ${key}: cannot read ${file} (${reason})`;
}

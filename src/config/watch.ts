import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Config } from './types.js';

/** Debounce: editors write a file in several steps. */
const SETTLE_MS = 200;

/** The config file and every list file it names: a change to any of them reloads. */
export function watchedFiles(config: Config): string[] {
  const files = new Set<string>([config.source]);
  const add = (f: string | undefined): void => {
    if (f) files.add(resolve(config.base_dir, f));
  };
  for (const rule of config.rules) {
    add(rule.domains_file);
    add(rule.cidrs_file);
  }
  for (const upstream of Object.values(config.upstreams)) if (upstream.type === 'pool') add(upstream.members_file);
  return [...files];
}

/** `--watch`: calls `onChange` (debounced) when the config or one of its list files changes. */
export class ConfigWatcher {
  readonly #onChange: () => void;
  #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(onChange: () => void) {
    this.#onChange = onChange;
  }

  /** (Re)arms the watchers for the files of `config` (list files may differ after a reload). */
  watch(config: Config): void {
    this.close();
    for (const file of watchedFiles(config)) {
      // A file that is missing now (deleted, not yet written back) is awaited in its
      // directory: the reload that failed for it must not be the last one.
      if (!this.#arm(file, () => this.#changed())) {
        const name = basename(file);
        this.#arm(dirname(file), (_event, changed) => {
          if (changed === null || changed.toString() === name) this.#changed();
        });
      }
    }
  }

  close(): void {
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
  }

  /** False when `path` cannot be watched (missing); the reload itself reports a missing file. */
  #arm(path: string, listener: (event: string, changed: string | Buffer | null) => void): boolean {
    try {
      const w = watch(path, listener);
      w.on('error', () => {}); // a file replaced by rename: the next reload re-arms
      w.unref();
      this.#watchers.push(w);
      return true;
    } catch {
      return false;
    }
  }

  #changed(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#onChange, SETTLE_MS);
    this.#timer.unref();
  }
}

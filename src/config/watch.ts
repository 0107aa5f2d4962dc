import { readlinkSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, isAbsolute, resolve, sep } from 'node:path';
import { DEFAULT_CONFIG_FILE, EMBEDDED_SOURCE } from './load.js';
import type { Config } from './types.js';

/** Debounce: editors write a file in several steps. */
const SETTLE_MS = 200;
/**
 * How long a reload waits while a watched file is empty or missing: `generate > list.txt`
 * truncates at once and writes when it is done, an editor deletes then writes back. Reading
 * it meanwhile applies an empty block list (a list file is read as it is) or logs a rejected
 * config. After this it reloads anyway: a file emptied or removed on purpose is not ignored.
 */
const HOLD_EMPTY_MS = 2_000;

/**
 * The config file and every file it names (lists, members files, CA files): a change to any
 * of them reloads. The embedded default has no file: ./socksgate.yaml is watched, the file a
 * reload would find (load.ts).
 */
export function watchedFiles(config: Config): string[] {
  const files = new Set<string>([config.source === EMBEDDED_SOURCE ? resolve(config.base_dir, DEFAULT_CONFIG_FILE) : config.source]);
  const add = (f: string | undefined): void => {
    if (f) files.add(resolve(config.base_dir, f));
  };
  for (const rule of config.rules) {
    add(rule.domains_file);
    add(rule.cidrs_file);
  }
  for (const upstream of Object.values(config.upstreams)) {
    if (upstream.type === 'pool') add(upstream.members_file);
    // Read at every build as well: a CA rotated in place (a Kubernetes Secret) is taken as a list is.
    if (upstream.type === 'http') add(upstream.ca);
  }
  return [...files];
}

/**
 * `--watch`: calls `onChange` (debounced) when the config or one of its list files changes.
 * Each file is watched twice. Its directory, filtered by name, is watched for as long as
 * the file is wanted: that watch never dies with the file, so a deletion, a rename over it
 * or a file written back is seen whenever it happens, a reload in progress included. The
 * file itself is watched as well, re-armed after every reload: through a symlink (a
 * Kubernetes ConfigMap swaps the directory a link points to) only the file's own watch
 * sees the target go away. That watch is re-armed only after the reload: an update landing
 * meanwhile (kubelet renames a new `..data` over the old one) is seen by the directory's
 * watch, which also takes the name the file's link goes through.
 */
export class ConfigWatcher {
  readonly #onChange: () => void;
  #files: FSWatcher[] = [];
  /** Directory → its watcher and the names in it that matter. */
  readonly #dirs = new Map<string, { watcher: FSWatcher; names: Set<string> }>();
  #timer: NodeJS.Timeout | undefined;
  /** The files of the last watch(): checked before a reload, in case one is mid-write. */
  #wanted: string[] = [];
  /** When the first change of the pending reload came (the hold on empty files counts from it). */
  #since: number | undefined;
  /** Closed for good: a reload settling after the stop must not arm it again. */
  #closed = false;

  constructor(onChange: () => void) {
    this.#onChange = onChange;
  }

  /** (Re)arms the watchers for the files of `config` (list files may differ after a reload). */
  watch(config: Config): void {
    if (this.#closed) return;
    for (const w of this.#files) w.close();
    this.#files = [];
    const wanted = new Map<string, Set<string>>();
    this.#wanted = watchedFiles(config);
    for (const file of this.#wanted) {
      const dir = dirname(file);
      const names = wanted.get(dir) ?? new Set<string>();
      names.add(basename(file));
      const via = linkedThrough(file);
      if (via) names.add(via);
      wanted.set(dir, names);
      // Missing now (deleted, not yet written back): its directory's watch waits for it.
      const w = this.#arm(file, () => this.#changed());
      if (w) this.#files.push(w);
    }
    for (const [dir, d] of this.#dirs) {
      if (wanted.has(dir)) continue;
      d.watcher.close();
      this.#dirs.delete(dir);
    }
    for (const [dir, names] of wanted) {
      const known = this.#dirs.get(dir);
      if (known) {
        known.names = names;
        continue;
      }
      const watched = { names };
      const watcher = this.#arm(dir, (_event, changed) => {
        if (changed === null || watched.names.has(changed.toString())) this.#changed();
      });
      if (watcher) this.#dirs.set(dir, Object.assign(watched, { watcher }));
    }
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const w of this.#files) w.close();
    this.#files = [];
    for (const d of this.#dirs.values()) d.watcher.close();
    this.#dirs.clear();
  }

  /** undefined when `path` cannot be watched (missing); the reload itself reports a missing file. */
  #arm(path: string, listener: (event: string, changed: string | Buffer | null) => void): FSWatcher | undefined {
    try {
      const w = watch(path, listener);
      w.on('error', () => {}); // a file replaced by rename: the next reload re-arms
      w.unref();
      return w;
    } catch {
      return undefined;
    }
  }

  #changed(): void {
    this.#since ??= Date.now();
    this.#settle();
  }

  #settle(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#fire(), SETTLE_MS);
    this.#timer.unref();
  }

  #fire(): void {
    if (this.#closed) return;
    if (this.#wanted.some(empty) && Date.now() - (this.#since ?? 0) < HOLD_EMPTY_MS) {
      this.#settle();
      return;
    }
    this.#since = undefined;
    this.#onChange();
  }
}

/** Empty or missing (through a symlink, its target): being written, most likely. */
function empty(file: string): boolean {
  try {
    return statSync(file).size === 0;
  } catch {
    return true;
  }
}

/**
 * `..data` for a Kubernetes ConfigMap or Secret file (`name -> ..data/name`): the first name
 * of a relative link that goes through its own directory, which an update swaps.
 */
function linkedThrough(file: string): string | undefined {
  let target: string;
  try {
    target = readlinkSync(file);
  } catch {
    return undefined; // not a link, or missing
  }
  if (isAbsolute(target)) return undefined;
  const first = target.split(sep)[0];
  return first && first !== '.' && first !== '..' && first !== target ? first : undefined;
}

// `domains_file` / `cidrs_file`: one entry a line, `#` comments and blank lines ignored.
// Read at compile time, so a reload re-reads them; errors read `FILE:LINE:COL: message`.

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

export interface ListLine {
  text: string;
  line: number; // 1-based
  col: number; // 1-based column where the entry starts
}

/** At most this many bad lines are reported per file: one bad generator gives thousands. */
const MAX_ISSUES_PER_FILE = 20;

/** Entries of a list file's text. A `#` starts a comment at line start or after whitespace. */
export function splitList(withBom: string): ListLine[] {
  // A byte order mark is no column of the first line (nor part of its entry).
  const text = withBom.replace(/^\uFEFF/, '');
  const out: ListLine[] = [];
  let line = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    line++;
    let raw = text.slice(start, end);
    start = end + 1;
    const hash = raw.search(/(?:^|\s)#/);
    if (hash >= 0) raw = raw.slice(0, hash);
    const entry = raw.trim();
    if (entry !== '') out.push({ text: entry, line, col: raw.length - raw.trimStart().length + 1 });
  }
  return out;
}

export interface LoadedList<T> {
  path: string; // absolute
  entries: T[];
}

/**
 * Reads `file` (relative to `baseDir`) and parses each entry with `parse`, which returns the
 * value or a message. Problems are appended to `issues`; the valid entries are returned.
 * `unreadable` words the error of a file that cannot be read (at the config line naming it).
 */
export async function loadList<T>(
  baseDir: string,
  file: string,
  parse: (entry: string) => T | string,
  issues: string[],
  unreadable: (path: string, err: unknown) => string,
): Promise<LoadedList<T>> {
  const path = resolve(baseDir, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    issues.push(unreadable(path, err));
    return { path, entries: [] };
  }
  const entries: T[] = [];
  let bad = 0;
  let firstUnlisted: ListLine | undefined;
  for (const l of splitList(text)) {
    const v = parse(l.text);
    if (typeof v !== 'string') {
      entries.push(v);
    } else if (++bad <= MAX_ISSUES_PER_FILE) {
      issues.push(`${path}:${l.line}:${l.col}: ${v}`);
    } else {
      firstUnlisted ??= l;
    }
  }
  // FILE:LINE:COL like every other issue (editors and CI annotations read it): where the rest begin.
  if (firstUnlisted) issues.push(`${path}:${firstUnlisted.line}:${firstUnlisted.col}: ${bad - MAX_ISSUES_PER_FILE} more invalid lines`);
  return { path, entries };
}

// Config loading: YAML (with positions) → ${ENV} interpolation → JSON Schema (defaults
// applied) → semantic checks → typed, frozen Config. Every problem of every phase is
// collected into one ConfigError whose issues read `FILE:LINE:COL: message`.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isAlias, isCollection, isNode, LineCounter, parseDocument, visit, type Document, type ErrorCode, type YAMLError } from 'yaml';
import { ConfigError } from '../errors.js';
import { interpolateDocument } from './env.js';
import { recordFilePlaces } from './file-places.js';
import { toConfig, type RawConfig } from './normalize.js';
import { SourceLocator, type Issue } from './positions.js';
import { checkSemantics } from './semantic.js';
import type { Config, ListenConfig } from './types.js';
import { validateSchema } from './validate.js';

export const DEFAULT_CONFIG_FILE = 'socksgate.yaml';
export const EMBEDDED_SOURCE = '<embedded default>';

/** PRODUCT.md: with no file, listen on 127.0.0.1:1080, no auth, everything direct. */
const EMBEDDED_DEFAULT = `listen:
  - host: 127.0.0.1
    port: 1080
default: direct
`;

export interface LoadOptions {
  /** Config file; relative paths are taken from `cwd`. */
  path?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * For a reload: the listeners the gateway runs. A reload cannot move them (a restart does),
   * so the open-proxy check and the egress default see them as well as the file's `listen`.
   * An empty file is refused then: it is one being rewritten, not a wish for every default.
   */
  listening?: readonly ListenConfig[];
}

/** `path`, else ./socksgate.yaml in `cwd` when it exists, else the embedded default. */
export async function loadConfig(opts: LoadOptions = {}): Promise<Config> {
  const cwd = resolve(opts.cwd ?? process.cwd());
  const env = opts.env ?? process.env;
  let file = opts.path;
  if (file === undefined) {
    const fallback = resolve(cwd, DEFAULT_CONFIG_FILE);
    if (!existsSync(fallback)) return parseText(EMBEDDED_DEFAULT, EMBEDDED_SOURCE, cwd, env, opts.listening);
    file = fallback;
  }
  const abs = resolve(cwd, file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError([`${file}: cannot read the config file (${reason})`]);
  }
  return parseText(text, file, dirname(abs), env, opts.listening);
}

/**
 * Parses config text; `source` names it in messages and its directory anchors *_file paths.
 * `listening`: the listeners running, as for a reload (LoadOptions).
 */
export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env, listening?: readonly ListenConfig[]): Config {
  return parseText(text, source, resolve(dirname(source)), env, listening);
}

function parseText(withBom: string, source: string, baseDir: string, env: NodeJS.ProcessEnv, listening?: readonly ListenConfig[]): Config {
  // A byte order mark (Windows editors write one) is no column of the first line.
  const text = withBom.replace(/^\uFEFF/, '');
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  const locator = new SourceLocator(doc, lines, source);
  // yaml only warns of a tag it cannot apply and keeps the bare value: `password: !abc tail` would be "tail".
  const broken = [...doc.errors, ...doc.warnings.filter((w) => TAG_WARNINGS.has(w.code))].sort((a, b) => a.pos[0] - b.pos[0]);
  if (broken.length > 0) {
    // A broken document has no reliable structure: report the syntax and stop there.
    const issues = broken.map((e) => `${source}:${locator.position(e.pos[0])}: ${syntaxMessage(e)}`);
    throw new ConfigError(issues);
  }
  // `render > socksgate.yaml` truncates at once and writes later: reloading the empty file in
  // between would run the defaults, without the rules and users. `{}` still asks for them.
  if (listening !== undefined && doc.contents === null) {
    throw new ConfigError([`${source}:1:1: the file is empty (still being written?); write "{}" for every default`]);
  }
  const keys = collectionKeys(doc, source, locator);
  if (keys.length > 0) throw new ConfigError(keys);
  const interpolation = interpolateDocument(doc, text, env);
  const raw: unknown = doc.contents === null ? {} : toJS(doc, source, locator);
  let schemaIssues = validateSchema(raw);
  if (retype(raw, schemaIssues, locator, interpolation.whole)) schemaIssues = validateSchema(raw);
  const checked = [...schemaIssues, ...checkSemantics(raw, listening)];
  const found = [
    ...interpolation.issues,
    // An unset ${VAR} left an empty string behind: "must not be empty" there says nothing new.
    ...checked.filter((issue) => !interpolation.failed.has(locator.offsetOf(issue))),
  ];
  if (found.length > 0) throw new ConfigError(sortedLines(found, locator));
  const config = toConfig(raw as RawConfig, source, baseDir, listening);
  texts.set(config, withBom);
  recordFilePlaces(config, locator);
  return config;
}

/** The text each config was parsed from. */
const texts = new WeakMap<Config, string>();

/**
 * The text `config` was parsed from: with `workers`, a worker starts from the text of the
 * config the others run (parseConfig with its source), not from the file as it is now.
 */
export function configText(config: Config): string | undefined {
  return texts.get(config);
}

/**
 * `? [a]` makes a list (or a mapping) a key. A config names things with its keys (upstreams,
 * users' fields): yaml would turn such a key into its text ("[ a ]") with a warning on stderr,
 * an upstream nobody could name. An error at the key instead.
 */
function collectionKeys(doc: Document, source: string, locator: SourceLocator): string[] {
  const issues: string[] = [];
  visit(doc, {
    Pair(_key, pair) {
      const { key } = pair;
      if (!isNode(key)) return;
      // An alias (`*k :`) names its anchor's node: a list there is a list as a key all the same.
      if (isCollection(isAlias(key) ? key.resolve(doc) : key)) issues.push(`${source}:${locator.position(key.range?.[0] ?? 0)}: a key must be a name, not a list or a mapping`);
    },
  });
  return issues;
}

/**
 * yaml finds an alias without its anchor (`listen: *nope`), or too many aliases (a "billion
 * laughs"), only while converting, and throws a ReferenceError: report it like any other issue.
 */
function toJS(doc: Document, source: string, locator: SourceLocator): unknown {
  try {
    return doc.toJS();
  } catch (err) {
    let at = 0;
    visit(doc, {
      Alias(_key, node) {
        if (node.resolve(doc) !== undefined) return undefined;
        at = node.range?.[0] ?? 0;
        return visit.BREAK;
      },
    });
    throw new ConfigError([`${source}:${locator.position(at)}: ${conversionMessage(err)}`]);
  }
}

/**
 * `port: ${PORT}` is a string once substituted; where the schema wants a number or a boolean
 * and the whole scalar (quoted or not) was that one variable, the text is read as the value it
 * spells (what substituting before parsing would give, as Docker Compose and envsubst users expect).
 * Returns whether anything changed.
 */
function retype(raw: unknown, issues: readonly Issue[], locator: SourceLocator, whole: ReadonlySet<number>): boolean {
  let changed = false;
  for (const issue of issues) {
    if (issue.expectedType === undefined || issue.path.length === 0 || !whole.has(locator.offsetOf(issue))) continue;
    let parent: unknown = raw;
    for (const seg of issue.path.slice(0, -1)) parent = (parent as Record<string | number, unknown> | undefined)?.[seg];
    const key = issue.path[issue.path.length - 1]!;
    if (parent === null || typeof parent !== 'object') continue;
    const holder = parent as Record<string | number, unknown>;
    const text = holder[key];
    if (typeof text !== 'string') continue;
    const value = spelled(text, issue.expectedType);
    if (value === undefined) continue;
    holder[key] = value;
    changed = true;
  }
  return changed;
}

function spelled(text: string, type: string): number | boolean | undefined {
  if ((type === 'integer' || type === 'number') && /^-?\d+(?:\.\d+)?$/.test(text)) return Number(text);
  if (type === 'boolean' && (text === 'true' || text === 'false')) return text === 'true';
  return undefined;
}

/** Issues in file order, each once. */
function sortedLines(issues: readonly Issue[], locator: SourceLocator): string[] {
  const placed = issues.map((issue, i) => ({ i, offset: locator.offsetOf(issue), line: locator.format(issue) }));
  placed.sort((a, b) => a.offset - b.offset || a.i - b.i);
  return [...new Set(placed.map((p) => p.line))];
}

/** yaml's warnings that a tag was not applied: the value would be read without it. */
const TAG_WARNINGS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['TAG_RESOLVE_FAILED', 'BAD_COLLECTION_TYPE']);

/** yaml's own words, except where they name its API instead of the fix. */
function syntaxMessage(e: YAMLError): string {
  // yaml quotes the tag, which is an unquoted value's own text (a password starting with !).
  if (e.code === 'TAG_RESOLVE_FAILED') return 'a YAML tag (!NAME) the gateway does not know: quote a value that starts with !';
  if (e.code === 'BAD_COLLECTION_TYPE') return 'a YAML tag (!NAME) that does not fit this value: quote a value that starts with !';
  if (e.code === 'MULTIPLE_DOCS') return 'a second document starts here, and a config file is one YAML document: merge the two, or remove this one';
  // yaml quotes up to 8 characters after the backslash, which in a password are the password's own.
  if (e.code === 'BAD_DQ_ESCAPE') return 'invalid escape sequence in a double-quoted string: write \\\\ for a backslash, or use single quotes';
  // yaml quotes the whole header, which is an unquoted value's own text (a password starting with > or |).
  if (e.message.startsWith('Block scalar header includes extra characters')) return 'a block scalar header (| or >) takes only an indentation digit and + or -: quote a value that starts with | or >';
  return firstLine(e.message);
}

/** An alias's name is an unquoted value's own text (a password starting with *): not quoted back. */
function conversionMessage(err: unknown): string {
  if (err instanceof ReferenceError && err.message.startsWith('Unresolved alias')) return 'an alias (*NAME) names no anchor set before it: quote a value that starts with *';
  return firstLine(err instanceof Error ? err.message : String(err));
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0]!.trim();
}

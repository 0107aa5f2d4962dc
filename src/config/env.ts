// `${VAR}` and `${VAR:-fallback}` in string values, replaced from the environment before
// validation (so patterns check the final text). `$${` stays a literal `${`.
// Only string scalars are touched. A scalar that is exactly one `${...}` may then take the type
// the schema wants there (`port: ${PORT}`), as if the text had been substituted before parsing;
// a quoted one too (`port: "${PORT}"`), as Docker Compose reads it: in a flow mapping
// (`{ port: ${PORT} }` opens a mapping) quoting is the only way to write one. See `whole` and load.ts.

import { isPair, isScalar, visit, type Document, type Scalar } from 'yaml';
import type { Issue } from './positions.js';

const EXPR_RE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;
/** Keys whose value is a secret: a malformed expression in one is not quoted back. */
const SECRET_KEYS: ReadonlySet<string> = new Set(['password', 'api_token']);
const USAGE = 'expected "${VAR}" or "${VAR:-fallback}" (write "$${" for a literal "${")';

export interface Interpolated {
  value: string;
  /** Problems, each with the index in `text` where its `${` starts. */
  problems: { index: number; message: string }[];
}

/**
 * Replaces every `${...}` in `text`; unset variables without a fallback are problems. A
 * fallback may hold `${...}` itself (`${A:-${B}}`), expanded only when it is used, as in the
 * shell. `secret`: the text is a password, so a malformed expression is not quoted back.
 */
export function interpolate(text: string, env: NodeJS.ProcessEnv, secret = false): Interpolated {
  const problems: Interpolated['problems'] = [];
  const value = expand({ text, env, secret, problems }, 0, text.length);
  return { value, problems };
}

interface Expansion {
  text: string;
  env: NodeJS.ProcessEnv;
  secret: boolean;
  problems: Interpolated['problems'];
}

/** `x.text[from, to)` with its expressions replaced. */
function expand(x: Expansion, from: number, to: number): string {
  const { text } = x;
  let out = '';
  let i = from;
  while (i < to) {
    const at = text.indexOf('$', i);
    if (at < 0 || at >= to) return out + text.slice(i, to);
    out += text.slice(i, at);
    if (text.startsWith('$${', at) && at + 3 <= to) {
      out += '${';
      i = at + 3;
    } else if (text.startsWith('${', at) && at + 2 <= to) {
      const close = closingBrace(text, at + 2, to);
      if (close < 0) {
        x.problems.push({ index: at, message: `unterminated "\${": ${USAGE}` });
        return out + text.slice(at, to);
      }
      out += substitute(x, at, close);
      i = close + 1;
    } else {
      out += '$';
      i = at + 1;
    }
  }
  return out;
}

/** Index of the `}` closing the `${` whose body starts at `from`, counting nested `${`; -1 if none. */
function closingBrace(text: string, from: number, to: number): number {
  let depth = 1;
  for (let j = from; j < to; j++) {
    if (text.startsWith('$${', j)) j += 2;
    else if (text.startsWith('${', j)) {
      depth++;
      j++;
    } else if (text.charCodeAt(j) === 125 /* } */ && --depth === 0) return j;
  }
  return -1;
}

/** The value of the expression `text[at, close]` (`${...}`). */
function substitute(x: Expansion, at: number, close: number): string {
  const m = EXPR_RE.exec(x.text.slice(at + 2, close));
  if (!m) {
    const shown = x.secret ? '${...}' : x.text.slice(at, close + 1);
    x.problems.push({ index: at, message: `invalid "${shown}": ${USAGE}` });
    return x.text.slice(at, close + 1);
  }
  const name = m[1]!;
  const hasFallback = m[2] !== undefined;
  const set = x.env[name];
  // Shell semantics of `:-`: the fallback also replaces an empty value.
  if (set !== undefined && (set !== '' || !hasFallback)) return set;
  if (hasFallback) return expand(x, at + 2 + name.length + 2, close);
  x.problems.push({ index: at, message: `environment variable ${name} is not set (use \${${name}:-fallback} for a default)` });
  return '';
}

export interface DocumentInterpolation {
  issues: Issue[];
  /** Start offsets of the scalars that could not be interpolated: later complaints about them are noise. */
  failed: Set<number>;
  /** Start offsets of scalars that were one `${...}` and nothing else. */
  whole: Set<number>;
}

/** Rewrites every string scalar of `doc` in place; returns the problems with source offsets. */
export function interpolateDocument(doc: Document, text: string, env: NodeJS.ProcessEnv): DocumentInterpolation {
  const issues: Issue[] = [];
  const failed = new Set<number>();
  const whole = new Set<number>();
  visit(doc, {
    Scalar(_key, node: Scalar, path) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      const original = node.value;
      const parent = path[path.length - 1];
      // A password, the admin API's token, or a member URL with user:password@.
      const secret = (isPair(parent) && isScalar(parent.key) && SECRET_KEYS.has(String(parent.key.value))) || /:\/\/[^/]*@/.test(original);
      const { value, problems } = interpolate(original, env, secret);
      node.value = value;
      if (problems.length > 0 && node.range) failed.add(node.range[0]);
      const single = original.startsWith('${') && closingBrace(original, 2, original.length) === original.length - 1;
      if (single && problems.length === 0 && node.range) whole.add(node.range[0]);
      for (const p of problems) {
        issues.push({ path: [], message: p.message, offset: sourceOffset(node, text, original, p.index) });
      }
    },
  });
  return { issues, failed, whole };
}

/**
 * Where the `${` at `index` of the scalar's value sits in the source text. Plain and quoted
 * scalars keep `${` verbatim, so the n-th `${` of the value is the n-th within the node's range.
 */
function sourceOffset(node: Scalar, text: string, value: string, index: number): number {
  const [start = 0, end = text.length] = node.range ?? [];
  const n = countOccurrences(value.slice(0, index), '${');
  let at = text.indexOf('${', start);
  for (let i = 0; i < n && at !== -1; i++) at = text.indexOf('${', at + 2);
  return at !== -1 && at < end ? at : start;
}

function countOccurrences(s: string, needle: string): number {
  let count = 0;
  for (let at = s.indexOf(needle); at !== -1; at = s.indexOf(needle, at + needle.length)) count++;
  return count;
}

// `${VAR}` and `${VAR:-fallback}` in string values, replaced from the environment before
// validation (so patterns check the final text). `$${` stays a literal `${`.
// Only string scalars are touched: `port: ${PORT}` yields the string, which the schema refuses.

import { visit, type Document, type Scalar } from 'yaml';
import type { Issue } from './positions.js';

const TOKEN_RE = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
const EXPR_RE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

export interface Interpolated {
  value: string;
  /** Problems, each with the index in `text` where its `${` starts. */
  problems: { index: number; message: string }[];
}

/** Replaces every `${...}` in `text`; unset variables without a fallback are problems. */
export function interpolate(text: string, env: NodeJS.ProcessEnv): Interpolated {
  const problems: Interpolated['problems'] = [];
  const value = text.replace(TOKEN_RE, (token: string, expr: string | undefined, index: number) => {
    if (token === '$${') return '${';
    if (expr === undefined) {
      problems.push({ index, message: 'unterminated "${": expected "${VAR}" or "${VAR:-fallback}"' });
      return token;
    }
    const m = EXPR_RE.exec(expr);
    if (!m) {
      problems.push({ index, message: `invalid "${token}": expected "\${VAR}" or "\${VAR:-fallback}"` });
      return token;
    }
    const name = m[1]!;
    const fallback = m[2];
    const set = env[name];
    // Shell semantics of `:-`: the fallback also replaces an empty value.
    if (set !== undefined && (set !== '' || fallback === undefined)) return set;
    if (fallback !== undefined) return fallback;
    problems.push({ index, message: `environment variable ${name} is not set (use \${${name}:-fallback} for a default)` });
    return '';
  });
  return { value, problems };
}

export interface DocumentInterpolation {
  issues: Issue[];
  /** Start offsets of the scalars that could not be interpolated: later complaints about them are noise. */
  failed: Set<number>;
}

/** Rewrites every string scalar of `doc` in place; returns the problems with source offsets. */
export function interpolateDocument(doc: Document, text: string, env: NodeJS.ProcessEnv): DocumentInterpolation {
  const issues: Issue[] = [];
  const failed = new Set<number>();
  visit(doc, {
    Scalar(_key, node: Scalar) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      const original = node.value;
      const { value, problems } = interpolate(original, env);
      node.value = value;
      if (problems.length > 0 && node.range) failed.add(node.range[0]);
      for (const p of problems) {
        issues.push({ path: [], message: p.message, offset: sourceOffset(node, text, original, p.index) });
      }
    },
  });
  return { issues, failed };
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

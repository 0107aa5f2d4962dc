// Schema validation: schemas/config.schema.json is the contract. Its code, compiled by ajv
// ahead of time (schema-validator.ts), runs once per load with `useDefaults`, so the raw object
// comes back with every default filled in; its errors become Issues with a path (mapped to
// line:col by positions.ts) and a message a user can act on.

import type { ErrorObject } from 'ajv/dist/2020.js';
import { DURATION_PATTERN } from './duration.js';
import { RATE_PATTERN } from './rate.js';
import { problem, type ConfigPath, type Issue } from './positions.js';
import { validateConfig } from './schema-validator.js';

/** From src/config or dist/config alike, the schema sits two levels up. */
export const SCHEMA_URL = new URL('../../schemas/config.schema.json', import.meta.url);

/** Validates `raw` in place (defaults are inserted) and returns the problems. */
export function validateSchema(raw: unknown): Issue[] {
  if (validateConfig(raw)) return [];
  return collapse(validateConfig.errors ?? []).map((e) => toIssue(e, raw));
}

/**
 * One line per problem. An anyOf/oneOf failure drops its branches' errors about the value
 * itself (each branch's "must be ..."), unless a branch went deeper: then the value had that
 * branch's shape (a pool member's object form) and the deeper errors say what is wrong in it.
 * A discriminator with no tag at all is the `required` error already reported beside it.
 */
function collapse(errors: readonly ErrorObject[]): ErrorObject[] {
  const combinators = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const under = (e: ErrorObject, c: ErrorObject): boolean => c !== e && e.schemaPath.startsWith(`${c.schemaPath}/`);
  const deeper = (c: ErrorObject): boolean => errors.some((e) => under(e, c) && e.instancePath.startsWith(`${c.instancePath}/`));
  // A mapping where one branch is the mapping form (a pool member's {url, weight, tags}): that
  // branch's own errors about it (an unknown key, no url) say what is wrong, not "anyOf".
  const shaped = (e: ErrorObject, c: ErrorObject): boolean => {
    const at = objectBranch(c);
    return at !== undefined && e.schemaPath.startsWith(at);
  };
  return errors.filter((e) => {
    if (e.keyword === 'discriminator' && (e.params as { tagValue?: unknown }).tagValue === undefined) return false;
    if ((e.keyword === 'anyOf' || e.keyword === 'oneOf') && (deeper(e) || errors.some((x) => shaped(x, e)))) return false;
    return !combinators.some((c) => under(e, c) && e.instancePath === c.instancePath && !shaped(e, c));
  });
}

/** The schema path prefix of `c`'s one mapping branch when its value is a mapping, else undefined. */
function objectBranch(c: ErrorObject): string | undefined {
  const value: unknown = c.data;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const i = branchesOf(c).findIndex((b) => b.type === 'object');
  return i === -1 ? undefined : `${c.schemaPath}/${i}/`;
}

function toIssue(e: ErrorObject, raw: unknown): Issue {
  const path = pointerToPath(e.instancePath, raw);
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(params['additionalProperty']);
      const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      const hint = known.length > 0 ? ` (expected one of: ${known.join(', ')})` : '';
      return issue([...path, key], `unknown key${hint}`, true);
    }
    case 'required':
      return issue(path, `missing required key "${String(params['missingProperty'])}"`);
    case 'dependentRequired':
      return issue(path, `"${String(params['property'])}" requires "${String(params['missingProperty'])}" as well`);
    case 'type': {
      // `idle_timeout: 5` is a duration without its unit: "must be a string" would not say so.
      const pattern = (e.parentSchema as { pattern?: unknown } | undefined)?.pattern;
      const shape = typeof pattern === 'string' ? NAMED_PATTERNS[pattern] : undefined;
      return { ...issue(path, shape ?? `must be ${TYPE_NAMES[String(params['type'])] ?? String(params['type'])}`), expectedType: String(params['type']) };
    }
    case 'enum':
      return issue(path, `must be one of: ${(params['allowedValues'] as unknown[]).map(String).join(', ')}`);
    case 'const':
      return issue(path, `must be "${String(params['allowedValue'])}"`);
    case 'pattern':
      return issue(path, patternMessage(String(params['pattern'])));
    case 'minItems':
      return issue(path, params['limit'] === 1 ? 'must not be empty' : e.message ?? 'too few items');
    case 'minLength':
      return issue(path, params['limit'] === 1 ? 'must not be empty' : e.message ?? 'too short');
    case 'discriminator':
      // At the tag's own value (`type: sock5`), not at the first key of its mapping.
      return issue([...path, String(params['tag'])], discriminatorMessage(params));
    case 'oneOf':
    case 'anyOf': {
      // `workers: ${WORKERS}` is a string once substituted: a branch wanting a number or a
      // boolean lets the loader read it as one, as it does where the schema names one type.
      const scalar = branchesOf(e).find((b) => b.type === 'integer' || b.type === 'number' || b.type === 'boolean');
      const found = issue(path, combinatorMessage(e));
      return scalar?.type ? { ...found, expectedType: scalar.type } : found;
    }
    default:
      return issue(path, e.message ?? `fails "${e.keyword}"`);
  }
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  array: 'a list',
  null: 'null',
};

/** The schema's patterns in words. */
const NAMED_PATTERNS: Readonly<Record<string, string>> = {
  [DURATION_PATTERN]: 'must be a duration like 500ms, 10s, 5m or 1h',
  [RATE_PATTERN]: 'must be a rate like 500KiB/s, 20MiB/s or 1GB/s (B, KB, KiB, MB, MiB, GB or GiB, then /s)',
  '^[A-Za-z0-9_]+$': 'must be letters, digits and _',
};

function patternMessage(pattern: string): string {
  const named = NAMED_PATTERNS[pattern];
  if (named !== undefined) return named;
  if (pattern.startsWith('^scrypt')) return 'must be a scrypt hash as printed by `socksgate hash-password` (scrypt$N$r$p$salt$hash)';
  return `must match ${pattern}`;
}

function discriminatorMessage(params: Record<string, unknown>): string {
  if (params['error'] === 'tag') return 'must be a string';
  return 'must be one of: socks5, socks4, http, pool';
}

interface Branch {
  type?: string;
  const?: unknown;
  minimum?: number;
  maximum?: number;
  required?: string[];
}

function branchesOf(e: ErrorObject): Branch[] {
  return Array.isArray(e.schema) ? (e.schema as Branch[]) : [];
}

/** A branch a user can be told in words: a constant, or a scalar type (with its range); undefined otherwise. */
function branchText(b: Branch): string | undefined {
  if (b.const !== undefined) return JSON.stringify(b.const);
  if (b.type === undefined) return undefined;
  const name = TYPE_NAMES[b.type] ?? b.type;
  return b.minimum !== undefined && b.maximum !== undefined ? `${name} from ${b.minimum} to ${b.maximum}` : name;
}

function combinatorMessage(e: ErrorObject): string {
  if (e.schemaPath.includes('/ports/')) return 'must be a port (1-65535) or a range string like "8000-8999"';
  const branches = branchesOf(e);
  const names = branches.flatMap((b) => b.required ?? []);
  if (e.keyword === 'oneOf' && names.length === branches.length && names.length > 0) {
    return `set exactly one of ${names.map((n) => `"${n}"`).join(' or ')}`;
  }
  const texts = branches.map(branchText);
  if (texts.length > 0 && texts.every((t) => t !== undefined)) return `must be ${texts.join(' or ')}`;
  return e.message ?? `fails "${e.keyword}"`;
}

function issue(path: ConfigPath, message: string, atKey = false): Issue {
  return { ...problem(path, message), atKey };
}

/** RFC 6901 JSON pointer → path segments; indexes into lists become numbers. */
function pointerToPath(pointer: string, raw: unknown): ConfigPath {
  if (pointer === '') return [];
  const path: (string | number)[] = [];
  let cur = raw;
  for (const part of pointer.slice(1).split('/')) {
    const seg = part.replace(/~1/g, '/').replace(/~0/g, '~');
    const key = Array.isArray(cur) ? Number(seg) : seg;
    path.push(key);
    cur = cur !== null && typeof cur === 'object' ? (cur as Record<string | number, unknown>)[key] : undefined;
  }
  return path;
}

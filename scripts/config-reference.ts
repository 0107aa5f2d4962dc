// Writes docs/configuration.md from the descriptions in schemas/config.schema.json, so the
// reference can never say something the schema does not. `--check` exits 1 when the file
// is not what the schema gives (test/docs/config-reference.test.ts makes the same comparison).
//
//   npm run docs:config            regenerate
//   npm run docs:config -- --check verify only

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SCHEMA_PATH, writeOrCheck } from './generated-file.js';

export const REFERENCE_PATH = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));

interface Schema {
  description?: string;
  type?: string;
  $ref?: string;
  const?: unknown;
  enum?: unknown[];
  default?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  items?: Schema;
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  required?: string[];
  minimum?: number;
  maximum?: number;
  $defs?: Record<string, Schema>;
}

interface Row {
  key: string;
  type: string;
  dflt: string;
  description: string;
}

/** The whole reference as Markdown. Pure: the same schema always gives the same text. */
export function renderReference(root: Schema): string {
  const defs = root.$defs ?? {};
  const deref = (s: Schema): Schema => (s.$ref ? { ...deref(defs[s.$ref.replace('#/$defs/', '')]!), ...omitRef(s) } : s);
  const typeOf = (raw: Schema): string => {
    const ref = raw.$ref?.replace('#/$defs/', '');
    if (ref === 'duration' || ref === 'rate') return `[${ref}](#formats)`;
    if (ref === 'upstream') return 'an upstream (one of the types below)';
    const s = deref(raw);
    if (s.const !== undefined) return code(s.const);
    if (s.enum) return s.enum.map(code).join(' \\| ');
    // An object's oneOf only lists alternative `required` sets: it is still an object.
    const alts = s.type === undefined ? (s.anyOf ?? s.oneOf) : undefined;
    if (alts) return alts.map(typeOf).join(' or ');
    if (s.type === 'array') return `list of ${s.items ? typeOf(s.items) : 'any'}`;
    if (s.type === 'object' && typeof s.additionalProperties === 'object') return `map of name → ${typeOf(s.additionalProperties)}`;
    if (s.type === 'integer' && s.minimum !== undefined) return `integer ${s.minimum}–${s.maximum ?? '∞'}`;
    return s.type ?? 'any';
  };
  /** Rows for `s` at `key` and for everything nested in it, in schema order. */
  const rows = (key: string, raw: Schema, required: boolean): Row[] => {
    const s = deref(raw);
    const own: Row = {
      key,
      type: typeOf(raw),
      dflt: s.default !== undefined ? code(s.default) : required ? 'required' : '',
      description: s.description ?? '',
    };
    const out = [own];
    const props = objectShape(s);
    if (props) {
      const prefix = deref(s).type === 'array' ? `${key}[]` : key;
      for (const [name, child] of Object.entries(props.properties)) out.push(...rows(`${prefix}.${name}`, child, props.required.includes(name)));
    } else if (typeof s.additionalProperties === 'object') {
      out.push(...rows(`${key}.NAME`, s.additionalProperties, false).slice(1));
    }
    return out;
  };
  /** An object's properties, or those of the object an array holds (or of an object alternative). */
  const objectShape = (s: Schema): { properties: Record<string, Schema>; required: string[] } | undefined => {
    if (s.properties) return { properties: s.properties, required: s.required ?? [] };
    if (s.type === 'array' && s.items) {
      const items = deref(s.items);
      const obj = items.properties ? items : (items.anyOf ?? []).map(deref).find((a) => a.properties);
      if (obj?.properties && !obj.$ref) return { properties: obj.properties, required: obj.required ?? [] };
    }
    return undefined;
  };

  const out: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated from schemas/config.schema.json by scripts/config-reference.ts (npm run docs:config). Do not edit. -->',
    '',
    `${root.description ?? ''}`,
    '',
    'The file is YAML, validated against [`schemas/config.schema.json`](../schemas/config.schema.json);',
    '`socksgate check` reports every problem as `FILE:LINE:COL: message`. Keys not listed here are errors.',
    '',
  ];
  const top = root.properties ?? {};
  for (const [name, raw] of Object.entries(top)) {
    const s = deref(raw);
    out.push(`## \`${name}\``, '', s.description ?? '', '');
    if (name === 'upstreams') {
      // A map of tagged unions: one table per `type`.
      const variants = deref(typeof s.additionalProperties === 'object' ? s.additionalProperties : {}).oneOf ?? [];
      out.push(meta(typeOf(raw), s.default), '');
      for (const v of variants) {
        const d = deref(v);
        out.push(`### \`type: ${String(deref(d.properties!.type!).const)}\``, '', d.description ?? '', '');
        out.push(...table(rows(`upstreams.NAME`, d, false).slice(1)), '');
      }
      continue;
    }
    const all = rows(name, raw, false);
    out.push(meta(all[0]!.type, s.default), '');
    if (all.length > 1) out.push(...table(all.slice(1)), '');
  }
  out.push('## Formats', '');
  for (const name of ['duration', 'rate'] as const) out.push(`- **${name}**: ${defs[name]?.description ?? ''}`);
  out.push('- **${VAR}**: every `${VAR}` or `${VAR:-fallback}` in a string value is replaced from the environment; an unset variable without a fallback is an error naming it. `$${` writes a literal `${` (a password holding one: `pa$${ss` is `pa${ss`). A value that is one `${VAR}` and nothing else, quoted or not, is read as the number or boolean it spells where one is wanted: `port: ${PORT}`, or `{ port: "${PORT}" }` in a flow mapping.', '');
  return out.join('\n');
}

function omitRef(s: Schema): Schema {
  const { $ref: _ref, ...rest } = s;
  return rest;
}

function code(v: unknown): string {
  return `\`${JSON.stringify(v)}\``;
}

function meta(type: string, dflt: unknown): string {
  return `Type: ${type}${dflt !== undefined ? `. Default: ${code(dflt)}` : ''}.`;
}

function table(rows: Row[]): string[] {
  const cell = (t: string): string => t.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [
    '| Key | Type | Default | Description |',
    '|---|---|---|---|',
    ...rows.map((r) => `| \`${r.key}\` | ${r.type.replace(/(?<!\\)\|/g, '\\|')} | ${r.dflt} | ${cell(r.description)} |`),
  ];
}

export function currentReference(): string {
  return renderReference(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as Schema);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeOrCheck(REFERENCE_PATH, currentReference(), 'npm run docs:config');
}

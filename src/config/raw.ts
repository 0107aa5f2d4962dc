// Narrowing helpers for the raw (parsed, maybe schema-invalid) config: the semantic checks
// run even when the schema found problems, so they must not trust any shape.

export type Obj = Readonly<Record<string, unknown>>;

export function obj(v: unknown): Obj | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined;
}

export function list(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** [key, value] pairs of a mapping; none for anything else. */
export function entries(v: unknown): [string, unknown][] {
  return Object.entries(obj(v) ?? {});
}

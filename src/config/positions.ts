// Maps a path inside the parsed config (["upstreams", "corp", "via"]) back to the YAML
// node it came from, so every issue can read `FILE:LINE:COL: message`.

import { isAlias, isMap, isNode, isPair, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';

export type ConfigPath = readonly (string | number)[];

/** One problem found in a config: where it is (a path, or a raw source offset) and what. */
export interface Issue {
  path: ConfigPath;
  message: string;
  /** Point at the key of the last path segment instead of its value (unknown keys). */
  atKey?: boolean;
  /** Exact source offset, when known better than the path (e.g. inside a string). */
  offset?: number;
  /** A schema type mismatch: the JSON type expected there. */
  expectedType?: string;
}

export class SourceLocator {
  readonly #doc: Document;
  readonly #lines: LineCounter;
  readonly #source: string;

  constructor(doc: Document, lines: LineCounter, source: string) {
    this.#doc = doc;
    this.#lines = lines;
    this.#source = source;
  }

  /** `FILE:LINE:COL: message`, positioned at the deepest node of the path that exists. */
  format(issue: Issue): string {
    return `${this.#source}:${this.position(this.offsetOf(issue))}: ${issue.message}`;
  }

  /** Source offset of the issue: its own, or the deepest node of its path that exists. */
  offsetOf(issue: Issue): number {
    return issue.offset ?? this.#offsetOfPath(issue.path, issue.atKey === true);
  }

  position(offset: number): string {
    const { line, col } = this.#lines.linePos(offset);
    return `${line}:${col}`;
  }

  #offsetOfPath(path: ConfigPath, atKey: boolean): number {
    let node: unknown = this.#doc.contents;
    let best = rangeStart(node) ?? 0;
    for (let i = 0; i < path.length; i++) {
      node = this.#deref(node);
      const seg = path[i]!;
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) return best;
        if (last && atKey) return rangeStart(pair.key) ?? best;
        // `key:` with no value has a null value node: the key is the better place.
        node = pair.value;
        best = rangeStart(node) ?? rangeStart(pair.key) ?? best;
      } else if (isSeq(node)) {
        node = node.items[Number(seg)];
        if (node === undefined) return best;
        best = rangeStart(isPair(node) ? node.key : node) ?? best;
      } else {
        return best;
      }
    }
    return best;
  }

  #deref(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.#doc) : node;
  }
}

function rangeStart(node: unknown): number | undefined {
  return isNode(node) ? (node as Node).range?.[0] : undefined;
}

/** An Issue at `path` whose message starts with the path, for readers without the YAML open. */
export function problem(path: ConfigPath, message: string): Issue {
  return { path, message: `${pathText(path)}: ${message}` };
}

/** `a.b[0].c` for messages; keys that are not identifiers are quoted. */
export function pathText(path: ConfigPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out || '(top level)';
}

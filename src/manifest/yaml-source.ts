import { isAlias, isMap, isScalar, isSeq, type Document, type Node, type Pair } from 'yaml';
import { LineIndex, type SourceLocation } from '../core/diagnostic.js';

/** A step into a YAML value: a mapping key or a sequence index. */
export type PathSegment = string | number;

/**
 * A parsed YAML document with its text, able to say where any value or key was written. Paths are
 * the same as JSON pointers split into segments (`['targets', 'hello', 'format']`).
 */
export class YamlSource {
  readonly #index: LineIndex;
  /** Each mapping's pairs by key, made on first look: a manifest of many targets asks often. */
  readonly #pairs = new WeakMap<object, Map<string, Pair>>();

  constructor(
    /** The file name as diagnostics print it. */
    readonly displayName: string,
    readonly text: string,
    readonly doc: Document.Parsed,
  ) {
    this.#index = new LineIndex(displayName, text);
  }

  /** The location of the span [start, end) of the text. */
  span(start: number, end?: number): SourceLocation {
    return this.#index.span(start, end);
  }

  /** Line 1, column 1: for errors about the file as a whole. */
  fileLocation(): SourceLocation {
    const first = this.#index.lineText(1);
    return { file: this.displayName, line: 1, column: 1, endColumn: Math.max(2, first.length + 1), sourceLine: first };
  }

  /** The pair holding `path`'s last segment in its parent mapping, if there is one. */
  #pair(path: readonly PathSegment[]): Pair | undefined {
    const last = path.at(-1);
    if (last === undefined) return undefined;
    const parent = this.node(path.slice(0, -1));
    if (!isMap(parent)) return undefined;
    return this.#pairIn(parent, last);
  }

  /** The pair of `map` whose key is `key` (the first, as YAML's own lookup). */
  #pairIn(map: { items: Pair[] }, key: PathSegment): Pair | undefined {
    let byKey = this.#pairs.get(map);
    if (!byKey) {
      byKey = new Map();
      for (const p of map.items) if (isScalar(p.key) && !byKey.has(String(p.key.value))) byKey.set(String(p.key.value), p);
      this.#pairs.set(map, byKey);
    }
    return byKey.get(String(key));
  }

  /** Keys of the mapping at `path`, in file order (JS objects put integer-like keys first). */
  keysAt(path: readonly PathSegment[]): string[] {
    const node = this.node(path);
    if (!isMap(node)) return [];
    return node.items.flatMap((p) => (isScalar(p.key) ? [String(p.key.value)] : []));
  }

  /** The node at `path`, following aliases. */
  node(path: readonly PathSegment[]): Node | undefined {
    let node: unknown = this.doc.contents;
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        node = this.#pairIn(node as { items: Pair[] }, seg)?.value ?? undefined;
      } else if (isSeq(node)) {
        node = typeof seg === 'number' || /^\d+$/.test(seg) ? node.items[Number(seg)] : undefined;
      } else return undefined;
      if (node === undefined || node === null) return undefined;
    }
    if (isAlias(node)) return (node.resolve(this.doc) ?? undefined) as Node | undefined;
    return (node ?? undefined) as Node | undefined;
  }

  #nodeLocation(node: Node | undefined): SourceLocation | undefined {
    const range = node?.range;
    if (!range) return undefined;
    // A block collection's range starts at its first entry; show only that first line.
    return this.span(range[0], Math.max(range[1], range[0] + 1));
  }

  /** Where the key of `path` was written (`format` in `format: squashfs`). */
  keyLocation(path: readonly PathSegment[]): SourceLocation | undefined {
    const pair = this.#pair(path);
    if (pair && isScalar(pair.key)) return this.#nodeLocation(pair.key);
    return undefined;
  }

  /**
   * Where the value of `path` was written. A key with no value (`output:`) points at the key; a
   * path that does not exist points at its nearest existing ancestor.
   */
  valueLocation(path: readonly PathSegment[]): SourceLocation {
    for (let n = path.length; n >= 0; n--) {
      const sub = path.slice(0, n);
      const node = this.node(sub);
      if (node !== undefined && !(isScalar(node) && node.value === null && node.range?.[0] === node.range?.[1])) {
        const loc = this.#nodeLocation(node);
        if (loc) return loc;
      }
      const key = this.keyLocation(sub);
      if (key) return key;
    }
    return this.fileLocation();
  }

  /** The key when there is one (mapping entries), else the value. */
  entryLocation(path: readonly PathSegment[]): SourceLocation {
    return this.keyLocation(path) ?? this.valueLocation(path);
  }
}

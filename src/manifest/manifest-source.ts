import type { SourceLocation } from '../core/diagnostic.js';
import type { PathSegment, YamlSource } from './yaml-source.js';

/**
 * Where an expanded target's value came from: a path in the YAML as written (a template's, the
 * target's own, a matrix entry's) or a place outside it (a line of an `args_file`, a `--set`).
 */
export type Origin = readonly PathSegment[] | SourceLocation;

/** How one expanded target maps back to the text (see expand-manifest.ts). */
export interface TargetOrigins {
  /** The path of the target as written (`['targets', 'app']`). */
  readonly base: readonly PathSegment[];
  /** Each field's origin by its path below the target, joined with '/' (`output`, `args/PY`, `inputs/2`). */
  readonly fields: ReadonlyMap<string, Origin>;
}

const isPath = (o: Origin): o is readonly PathSegment[] => Array.isArray(o);

/**
 * The manifest's text seen through the expansion of `inherits`, `matrix`, variables and `--set`
 * (docs/ARCHITECTURE.md, Manifest and recipes): the checks ask for the location of
 * `['targets', 'app-py3.12', 'output']` and get the line where that value is written, which may be
 * in a template, in the matrix, in an args file or on the command line. Paths that were not
 * expanded are the YAML's own.
 */
export class ManifestSource {
  constructor(
    readonly yaml: YamlSource,
    /** Values given with `--set`, by their path joined with '/'. */
    readonly overrides: ReadonlyMap<string, SourceLocation> = new Map(),
    /** Expanded targets by name. */
    readonly targets: ReadonlyMap<string, TargetOrigins> = new Map(),
    /** Groups made by the expansion (a matrix target's base name), to the target that made them. */
    readonly groups: ReadonlyMap<string, readonly PathSegment[]> = new Map(),
    /** The mapping keys in order, where the expansion changed them (`targets`, `groups`). */
    readonly order: ReadonlyMap<string, readonly string[]> = new Map(),
  ) {}

  get displayName(): string {
    return this.yaml.displayName;
  }

  fileLocation(): SourceLocation {
    return this.yaml.fileLocation();
  }

  span(start: number, end?: number): SourceLocation {
    return this.yaml.span(start, end);
  }

  /**
   * The keys of the mapping at `path` in file order (after the expansion for targets and groups);
   * undefined inside an expanded target, whose mappings were made in order (the data's own order).
   */
  keysAt(path: readonly PathSegment[]): string[] | undefined {
    const own = this.order.get(path.join('/'));
    if (own !== undefined) return [...own];
    if (path[0] === 'targets' && path.length > 2 && this.targets.has(String(path[1]))) return undefined;
    return this.yaml.keysAt(path);
  }

  /** Where `path` leads in the text: a YAML path or a location outside it (a `--set`, an args file). */
  #resolve(path: readonly PathSegment[]): Origin {
    const mapped = this.#mapTarget(path);
    if (!isPath(mapped)) return mapped;
    return this.overrides.get(mapped.join('/')) ?? mapped;
  }

  #mapTarget(path: readonly PathSegment[]): Origin {
    if (path[0] === 'groups' && path.length >= 2) {
      const made = this.groups.get(String(path[1]));
      if (made !== undefined) return made;
    }
    if (path[0] !== 'targets' || path.length < 2) return path;
    const t = this.targets.get(String(path[1]));
    if (t === undefined) return path;
    if (path.length === 2) return t.base;
    for (let n = path.length; n > 2; n--) {
      const o = t.fields.get(path.slice(2, n).join('/'));
      if (o === undefined) continue;
      if (!isPath(o)) return o;
      return [...o, ...path.slice(n)];
    }
    return t.base;
  }

  valueLocation(path: readonly PathSegment[]): SourceLocation {
    const o = this.#resolve(path);
    return isPath(o) ? this.yaml.valueLocation(o) : o;
  }

  entryLocation(path: readonly PathSegment[]): SourceLocation {
    const o = this.#resolve(path);
    return isPath(o) ? this.yaml.entryLocation(o) : o;
  }

  keyLocation(path: readonly PathSegment[]): SourceLocation | undefined {
    const o = this.#resolve(path);
    return isPath(o) ? this.yaml.keyLocation(o) : o;
  }
}

import { lstatSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, sep } from 'node:path';
import { error, type Diagnostic, type Reason, type SourceLocation } from '../core/diagnostic.js';
import { isGlob } from '../core/is-glob.js';
import type { Target } from './project.js';

/** A path of the project that no output may be, hold or lie in: the manifest, a recipe, a source. */
export interface ProtectedPath {
  /** Absolute, as written (symlinks are resolved here). */
  readonly path: string;
  /** How a message names it: `the recipe 'app.def' of target 'app'`. */
  readonly what: string;
  /** Where it is declared, when it is declared somewhere. */
  readonly location?: SourceLocation;
  /** The target that reads it (its recipe, input or source); none for the manifest and `.orchestrator/`. */
  readonly owner?: string;
  /**
   * Read with every output left out (a `%files` source, an input: src/freshness/input-filter.ts), so
   * an output may lie inside it (`%files . /home/app` with the output in `build/`); it may still
   * not be it or hold it.
   */
  readonly readAroundOutputs?: boolean;
}

/** A folder of `outputs.outside`: outside the project, outputs may be written only below one. */
export interface OutsideFolder {
  /** Absolute, `~` expanded. */
  readonly path: string;
  readonly location: SourceLocation;
}

/** The folders an output may never be, even with an opt-in: a build replaces its whole output. */
const SYSTEM_FOLDERS: ReadonlySet<string> = new Set(
  ['/', '/bin', '/boot', '/dev', '/etc', '/proc', '/root', '/run', '/sbin', '/sys', '/usr', '/var', '/home', '/tmp', '/opt', '/srv', '/mnt', '/media'],
);
const isSystemFolder = (p: string): boolean => SYSTEM_FOLDERS.has(p) || /^\/lib[^/]*$/.test(p);

/** `path` is `folder` or below it. */
export function within(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder === '/' ? '/' : folder + sep);
}

/** `path`'s folders from its parent up to `/`. */
function* ancestors(path: string): Generator<string> {
  for (let p = dirname(path); ; p = dirname(p)) {
    yield p;
    if (p === '/' || p === '.') return;
  }
}

/**
 * Real paths (symlinks resolved) of paths that may not exist yet: the real path of the longest
 * existing ancestor, and the rest as written. Folders are remembered, so many outputs in one folder
 * cost one look each.
 */
export class RealPaths {
  readonly #memo = new Map<string, string>();

  of(path: string): string {
    const known = this.#memo.get(path);
    if (known !== undefined) return known;
    let real: string;
    try {
      real = realpathSync.native(path);
    } catch {
      const parent = dirname(path);
      real = parent === path ? path : join(this.of(parent), basename(path));
    }
    this.#memo.set(path, real);
    return real;
  }

  /**
   * The same as `of`, in one look per folder rather than per output (100k outputs in one folder):
   * the folder's real path, and the output's own name unless it is itself a symlink.
   */
  ofOutput(path: string): string {
    const parent = dirname(path);
    if (parent === path) return path;
    if (lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink()) return this.of(path);
    return join(this.of(parent), basename(path));
  }
}

/** The fixed folder part of a pattern (`data/*.csv` → `data`), absolute; a path as it is. */
export function fixedPart(baseDir: string, text: string): string {
  const abs = isAbsolute(text) ? text : join(baseDir, text);
  if (!isGlob(text)) return abs;
  const parts = abs.split('/');
  const first = parts.findIndex((s) => isGlob(s));
  return parts.slice(0, first).join('/') || '/';
}

export interface CheckOutputsOptions {
  /** The project folder (absolute). */
  readonly dir: string;
  readonly targets: readonly Target[];
  /** How an output reads in a message (as written, or the default). */
  readonly shown: (t: Target) => string;
  /** `outputs.outside`; undefined: the checks of where outputs may be are not made (recipes' pass). */
  readonly outside?: readonly OutsideFolder[];
  readonly home?: string;
  /** Sources no output may touch. */
  readonly protectedPaths: readonly ProtectedPath[];
  readonly real?: RealPaths;
}

/**
 * Where outputs may be (docs/ARCHITECTURE.md, Manifest and recipes): not twice, not over the project or inside another sandbox,
 * never a system folder or the home, outside the project only below an `outputs.outside` folder,
 * and never the manifest, a recipe, a source or `.orchestrator/`, nor holding or inside one (inside a
 * `%files` source or an input folder is fine: those are read with every output left out). Paths
 * are compared by their real paths. Each check looks up each path's folders in a table: linear in
 * the number of targets (times the depth of the paths), for manifests of many thousand targets.
 */
export function checkOutputs(options: CheckOutputsOptions): Diagnostic[] {
  const real = options.real ?? new RealPaths();
  const out: Diagnostic[] = [];
  const realDir = real.of(options.dir);
  const outputs = options.targets.map((t) => ({ t, real: real.ofOutput(t.output) }));
  const loc = (t: Target): SourceLocation => t.locations.output ?? t.locations.name;
  const { shown } = options;
  /** Outputs with a problem of place (over the project, a system folder): nothing more to say of them. */
  const misplaced = new Set<Target>();

  if (options.outside !== undefined) {
    out.push(...duplicates(outputs, shown, loc));
    const allowed = options.outside.map((f) => ({ ...f, real: real.of(f.path) }));
    const sandboxes = new Map(outputs.filter((o) => o.t.format === 'sandbox').map((o) => [o.real, o.t]));
    for (const { t, real: r } of outputs) {
      const place = placeProblem(t, r, { realDir, dir: options.dir, home: options.home, allowed, shown: shown(t) });
      if (place) {
        out.push(error(place.reason, place.message, { location: loc(t), hint: place.hint }));
        if (place.fatal) {
          misplaced.add(t);
          continue;
        }
      }
      const s = [...ancestors(r)].map((a) => sandboxes.get(a)).find((x) => x !== undefined && x !== t);
      if (s) {
        out.push(
          error('manifest-output-inside-sandbox', `output '${shown(t)}' of target '${t.name}' is inside the sandbox of target '${s.name}'`, {
            location: loc(t),
            hint: `a sandbox build replaces its whole folder ('${shown(s)}'); move the output out of it`,
            related: [{ message: `target '${s.name}' writes its sandbox${s.outputGiven ? ' here' : ' by default'}`, location: loc(s) }],
          }),
        );
      }
    }
  }
  out.push(...overlaps(outputs.filter((o) => !misplaced.has(o.t)), options.protectedPaths, real, shown, loc));
  return out;
}

type Located = (t: Target) => SourceLocation;

function duplicates(outputs: ReadonlyArray<{ t: Target; real: string }>, shown: (t: Target) => string, loc: Located): Diagnostic[] {
  const out: Diagnostic[] = [];
  const firstWriter = new Map<string, Target>();
  for (const { t, real } of outputs) {
    const prev = firstWriter.get(real);
    if (!prev) {
      firstWriter.set(real, t);
      continue;
    }
    const same = shown(prev) === shown(t) ? `'${shown(t)}'` : `'${shown(t)}' (the same path as '${shown(prev)}')`;
    out.push(
      error('manifest-duplicate-output', `targets '${prev.name}' and '${t.name}' both write ${same}`, {
        location: loc(t),
        hint: t.outputGiven ? `give target '${t.name}' another 'output'` : `give target '${t.name}' an 'output' of its own`,
        related: [{ message: `target '${prev.name}' writes it${prev.outputGiven ? ' here' : ' by default'}`, location: loc(prev) }],
      }),
    );
  }
  return out;
}

interface PlaceProblem {
  readonly reason: Reason;
  readonly message: string;
  readonly hint: string;
  /** No further check of this output makes sense. */
  readonly fatal: boolean;
}

/** An output that holds the project, is a system folder or the home, or is outside the project without an opt-in. */
function placeProblem(
  t: Target,
  real: string,
  o: { realDir: string; dir: string; home: string | undefined; allowed: ReadonlyArray<OutsideFolder & { real: string }>; shown: string },
): PlaceProblem | undefined {
  const what = `output '${o.shown}' of target '${t.name}'`;
  if (within(o.dir, t.output) || within(o.realDir, real)) {
    return { reason: 'manifest-output-contains-project', message: `${what} would hold the project itself`, hint: "a build replaces its whole output; choose a folder inside the project such as 'build/'", fatal: true };
  }
  const system = [t.output, real].find(isSystemFolder);
  if (system !== undefined) {
    return { reason: 'manifest-output-system-folder', message: `${what} is the system folder ${system}`, hint: "a build replaces its whole output; write into a folder of the project such as 'build/'", fatal: true };
  }
  if (o.home !== undefined && (within(o.home, t.output) || within(o.home, real))) {
    return { reason: 'manifest-output-system-folder', message: `${what} ${t.output === o.home || real === o.home ? 'is' : 'would hold'} your home folder ${o.home}`, hint: "a build replaces its whole output; write into a folder of the project such as 'build/'", fatal: true };
  }
  if (within(real, o.realDir)) return undefined;
  if (o.allowed.some((f) => within(t.output, f.path) || within(real, f.real))) return undefined;
  const where = real === t.output ? '' : ` (really ${real})`;
  return {
    reason: 'manifest-output-outside-project',
    message: `${what} is outside the project folder${where}`,
    hint: `outputs outside the project need an opt-in: list a folder that holds it at the top level, 'outputs: {outside: [${dirname(t.output)}]}'`,
    fatal: false,
  };
}

/** `dependsOn(a, b)`: target `a` is built after `b` (through `from: target:` and `inputs: [target:]`). */
function dependencies(targets: readonly Target[]): (a: string, b: string) => boolean {
  const direct = new Map(targets.map((t) => [t.name, t.dependencies]));
  const memo = new Map<string, Set<string>>();
  const all = (name: string): Set<string> => {
    let set = memo.get(name);
    if (set) return set;
    set = new Set();
    memo.set(name, set); // (no cycles here: they are errors of their own; a cycle stops at the memo)
    const stack = [...(direct.get(name) ?? [])];
    while (stack.length > 0) {
      const d = stack.pop()!;
      if (set.has(d)) continue;
      set.add(d);
      stack.push(...(direct.get(d) ?? []));
    }
    return set;
  };
  return (a, b) => all(a).has(b);
}

function overlaps(
  outputs: ReadonlyArray<{ t: Target; real: string }>,
  protectedPaths: readonly ProtectedPath[],
  real: RealPaths,
  shown: (t: Target) => string,
  loc: Located,
): Diagnostic[] {
  // Each protected path once per real path (the first declaration names it), with every target that reads it.
  const byReal = new Map<string, { p: ProtectedPath; owners: Array<string | undefined> }>();
  for (const p of protectedPaths) {
    const r = real.of(p.path);
    const known = byReal.get(r);
    if (known) known.owners.push(p.owner);
    else byReal.set(r, { p, owners: [p.owner] });
  }
  const dependsOn = dependencies(outputs.map((o) => o.t));
  // A path in the output of a target that every reader of it is built after is that target's
  // product, read on purpose (`from: target:X` and X's files); not so for X itself.
  const product = (t: Target, owners: ReadonlyArray<string | undefined>): boolean =>
    owners.every((o) => o !== undefined && o !== t.name && dependsOn(o, t.name));
  const byOutput = new Map<string, Target[]>();
  for (const o of outputs) byOutput.set(o.real, [...(byOutput.get(o.real) ?? []), o.t]);
  const found: Array<{ t: Target; p: ProtectedPath; how: 'is' | 'holds' | 'inside' }> = [];
  for (const { t, real: r } of outputs) {
    const same = byReal.get(r);
    if (same && !product(t, same.owners)) found.push({ t, p: same.p, how: 'is' });
    for (const a of ancestors(r)) {
      const p = byReal.get(a);
      if (p && !p.p.readAroundOutputs) found.push({ t, p: p.p, how: 'inside' });
    }
  }
  for (const [r, { p, owners }] of byReal) {
    for (const a of ancestors(r)) for (const t of byOutput.get(a) ?? []) if (!product(t, owners)) found.push({ t, p, how: 'holds' });
  }
  const order = new Map(outputs.map((o, i) => [o.t, i]));
  found.sort((a, b) => order.get(a.t)! - order.get(b.t)!);
  return found.map(({ t, p, how }) => {
    const verb = how === 'is' ? 'is' : how === 'holds' ? 'would hold' : 'is inside';
    return error('manifest-output-overwrites-source', `output '${shown(t)}' of target '${t.name}' ${verb} ${p.what}`, {
      location: loc(t),
      hint: "a build replaces its whole output; choose an output apart from the project's sources, such as 'build/NAME/'",
      ...(p.location ? { related: [{ message: `${p.what.replace(/^the /, '')} is declared here`, location: p.location }] } : {}),
    });
  });
}

import { dirname, isAbsolute, join } from 'node:path';
import type { Project, SourceRef, Target } from '../manifest/project.js';
import type { Recipe, Stage } from '../recipe/model.js';
import { filesBlocks } from '../recipe/sections.js';
import { isGlob, shellGlob } from './shell-glob.js';

/** Why a path is watched: it decides what a change to it means. */
export type WatchRole = 'manifest' | 'recipe' | 'files' | 'input' | 'source';

/** One watched path and the targets whose build reads it. */
export interface WatchEntry {
  /** Absolute path given to the watcher: a file, or a folder (watched with all below it). */
  readonly path: string;
  readonly role: WatchRole;
  /** The targets that read it; for the manifest, every target of the plan. */
  readonly targets: readonly string[];
  /** For a glob: whether a changed path below `path` is one the pattern matches. */
  readonly matches?: (path: string) => boolean;
}

/** What a set of changed paths means for the build. */
export interface ChangeImpact {
  /** The manifest changed: reload it, and check every target. */
  readonly manifest: boolean;
  /** Targets whose inputs changed (without their dependents). */
  readonly targets: ReadonlySet<string>;
  /** The changed paths that matter, in the order given. */
  readonly relevant: readonly string[];
}

function under(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith('/') ? folder : `${folder}/`);
}

/** Host paths a manifest `from:` reads (none for registry images and other targets). */
function fromPaths(from: SourceRef): string[] {
  switch (from.kind) {
    case 'docker':
    case 'oras':
    case 'target':
      return [];
    case 'path':
      return [from.path];
    case 'oci':
      return [join(from.dir, 'index.json')];
    case 'oci-archive':
    case 'docker-archive':
      return [from.file];
    default: {
      const never: never = from;
      return [String(never)];
    }
  }
}

/** Host paths a recipe stage's header source reads (`Bootstrap: localimage`, `oci`, archives). */
function headerPaths(stage: Stage, recipeDir: string): string[] {
  const from = stage.header.get('from')?.value;
  if (from === undefined || from === '') return [];
  const abs = (p: string) => (isAbsolute(p) ? p : join(recipeDir, p));
  switch (stage.bootstrap) {
    case 'localimage':
    case 'oci-archive':
    case 'docker-archive':
      return [abs(from)];
    case 'oci':
      return [join(abs(from.replace(/:[^/:]*$/, '')), 'index.json')];
    default:
      return [];
  }
}

/**
 * Exactly what the builds of a plan read from the host (docs/ARCHITECTURE.md, Watch): the manifest,
 * each target's recipe, its `%files` sources (relative to the recipe's folder; a glob is watched
 * through its fixed folder and filtered), its declared `inputs` (relative to the project; a
 * `target:NAME` input is another target, not a file), and its local sources (`from: ./path`,
 * `Bootstrap: localimage`, OCI layouts and archives). Never the outputs, `.orchestrator/` or the
 * store: the build writes those, and watching them would make it wake itself up.
 */
export class WatchSet {
  private constructor(
    readonly entries: readonly WatchEntry[],
    /** Folders whose changes are never looked at. */
    readonly excluded: readonly string[],
  ) {}

  /**
   * The watch set of `targets` (names in `project`). `recipes` holds the recipes that parsed;
   * the recipe file of a target whose recipe did not parse is still watched, so its fix is seen.
   */
  static of(options: { project: Project; recipes: ReadonlyMap<string, Recipe>; targets: Iterable<string>; storeDir?: string }): WatchSet {
    const { project } = options;
    const wanted = new Set(options.targets);
    const byName = new Map(project.targets.map((t) => [t.name, t]));
    const excluded = [join(project.dir, '.orchestrator'), ...project.targets.map((t) => t.output), ...(options.storeDir ? [options.storeDir] : [])];
    const entries: WatchEntry[] = [{ path: project.file, role: 'manifest', targets: [...wanted] }];
    // An args file is a part of the manifest: a change to it may change any target.
    for (const f of project.expansion?.argsFiles ?? []) entries.push({ path: f, role: 'manifest', targets: [...wanted] });
    const add = (path: string, role: WatchRole, target: Target, matches?: (p: string) => boolean): void => {
      entries.push({ path, role, targets: [target.name], ...(matches ? { matches } : {}) });
    };
    const addPattern = (baseDir: string, text: string, role: WatchRole, target: Target): void => {
      if (!isGlob(text)) add(isAbsolute(text) ? text : join(baseDir, text), role, target);
      else {
        const g = shellGlob(baseDir, text);
        add(g.folder, role, target, g.matches);
      }
    };
    for (const name of wanted) {
      const target = byName.get(name);
      if (!target) continue;
      if (target.recipe) add(target.recipe, 'recipe', target);
      if (target.from) for (const p of fromPaths(target.from)) add(p, 'source', target);
      for (const input of target.inputs) if (!input.startsWith('target:')) addPattern(project.dir, input, 'input', target);
      const recipe = options.recipes.get(name);
      if (!recipe) continue;
      const recipeDir = target.recipe ? dirname(target.recipe) : project.dir;
      for (const [i, stage] of recipe.stages.entries()) {
        // `from:` replaces the last stage's header source; earlier stages keep theirs.
        if (!(target.from && i === recipe.stages.length - 1)) for (const p of headerPaths(stage, recipeDir)) add(p, 'source', target);
        for (const block of filesBlocks(stage)) {
          if (block.fromStage !== undefined) continue;
          for (const e of block.entries) addPattern(recipeDir, e.src, 'files', target);
        }
      }
    }
    const isExcluded = (p: string) => excluded.some((x) => under(p, x));
    return new WatchSet(
      entries.filter((e) => e.role === 'manifest' || !isExcluded(e.path)),
      excluded,
    );
  }

  /** The same entries plus another set's (the last good plan's, while a broken one is fixed). */
  union(other: WatchSet): WatchSet {
    return new WatchSet([...this.entries, ...other.entries], [...new Set([...this.excluded, ...other.excluded])]);
  }

  /** The distinct paths to give the watcher, sorted. */
  paths(): string[] {
    return [...new Set(this.entries.map((e) => e.path))].sort();
  }

  /** Whether the watcher should skip `path` (an output, `.orchestrator/`, the store). */
  isExcluded(path: string): boolean {
    return this.excluded.some((x) => under(path, x));
  }

  /** What the changed paths mean: the manifest, the targets whose inputs they are, or nothing. */
  impact(changed: Iterable<string>): ChangeImpact {
    let manifest = false;
    const targets = new Set<string>();
    const relevant: string[] = [];
    for (const path of changed) {
      if (this.isExcluded(path)) continue;
      let hit = false;
      for (const e of this.entries) {
        if (!under(path, e.path)) continue;
        if (e.matches && !e.matches(path)) continue;
        hit = true;
        if (e.role === 'manifest') manifest = true;
        for (const t of e.targets) targets.add(t);
      }
      if (hit) relevant.push(path);
    }
    return { manifest, targets, relevant };
  }
}

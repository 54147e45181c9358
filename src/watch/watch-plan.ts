import type { Diagnostic } from '../core/diagnostic.js';
import { expandSelection } from '../graph/expand-selection.js';
import { TargetGraph } from '../graph/target-graph.js';
import { loadProject } from '../manifest/load-project.js';
import { loadRecipes } from '../manifest/load-recipes.js';
import type { Project } from '../manifest/project.js';
import type { Recipe } from '../recipe/model.js';
import { WatchSet } from './watch-set.js';

/** Where the watched project is and what of it to build (a part of WatchOptions). */
export interface PlanOptions {
  /** The working folder; `dir` and `file` are as for loadProject (-C, -f). */
  readonly cwd: string;
  readonly dir?: string | undefined;
  readonly file?: string | undefined;
  /** The environment `${NAME}` in the manifest reads, and the `--set` values (as for loadProject). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  readonly set?: readonly string[] | undefined;
  /** Targets and groups as named on the command line (none: the default group). */
  readonly selection: readonly string[];
  /** The cache folder (never watched). */
  readonly storeDir: string;
}

/** A manifest with its recipes that loaded without errors, and what to build of it. */
export interface Plan {
  readonly project: Project;
  readonly recipes: ReadonlyMap<string, Recipe>;
  /** The requested targets and their dependencies, in build order. */
  readonly order: readonly string[];
  readonly requested: ReadonlySet<string>;
  readonly graph: TargetGraph;
  readonly watch: WatchSet;
}

/** The result of reading the manifest and recipes as they are now. */
export interface Loaded {
  readonly plan?: Plan;
  /** What to watch when there is no plan: the broken version's manifest and recipe files. */
  readonly watch?: WatchSet;
  readonly diagnostics: readonly Diagnostic[];
  /** The manifest itself did not load, or the selection names nothing in it. */
  readonly fatal: boolean;
}

/** Reads the manifest and recipes as they are now: the plan, or what is wrong and what to watch. */
export async function loadPlan(options: PlanOptions): Promise<Loaded> {
  const { project, diagnostics } = await loadProject({ cwd: options.cwd, dir: options.dir, file: options.file, env: options.env, set: options.set });
  if (!project) return { diagnostics, fatal: true };
  const recipes = loadRecipes(project, { cwd: options.cwd });
  const all = [...diagnostics, ...recipes.diagnostics];
  const selection = expandSelection(project, options.selection);
  const { storeDir } = options;
  if (!selection.ok) return { diagnostics: [...all, ...selection.error], fatal: true, watch: WatchSet.of({ project, recipes: recipes.byTarget, targets: [], storeDir }) };
  const graph = TargetGraph.fromProject(project);
  const order = graph.buildOrder(selection.value);
  const watchSet = WatchSet.of({ project, recipes: recipes.byTarget, targets: order, storeDir });
  if (all.some((d) => d.severity === 'error')) return { diagnostics: all, fatal: false, watch: watchSet };
  return {
    plan: { project, recipes: recipes.byTarget, order, requested: new Set(selection.value), graph, watch: watchSet },
    diagnostics: all,
    fatal: false,
  };
}

/** `names` and every target built from them, transitively. */
export function withDependents(graph: TargetGraph, names: Iterable<string>): Set<string> {
  const out = new Set<string>();
  const visit = (n: string): void => {
    if (out.has(n)) return;
    out.add(n);
    for (const d of graph.dependents(n)) visit(d);
  };
  for (const n of names) visit(n);
  return out;
}

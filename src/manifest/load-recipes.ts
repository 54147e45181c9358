import { readFileSync } from 'node:fs';
import { error, sortDiagnostics, type Diagnostic } from '../core/diagnostic.js';
import { checkSupported } from '../recipe/check-supported.js';
import { debootstrapRequest } from '../recipe/debootstrap-header.js';
import type { Recipe, Stage } from '../recipe/model.js';
import type { Result } from '../core/result.js';
import { parseReference } from '../registry/reference.js';
import { parseRecipe } from '../recipe/parse-recipe.js';
import { resolveRecipe } from '../recipe/resolve-recipe.js';
import { displayPath } from './load-project.js';
import type { Project, Target } from './project.js';
import { checkOutputs, fixedPart, type ProtectedPath } from './check-outputs.js';
import { filesBlocks } from '../recipe/sections.js';
import { dirname, isAbsolute, relative } from 'node:path';

/** Header agents that read a local path: its From: is a source no output may touch. */
const LOCAL_AGENTS: ReadonlySet<string> = new Set(['localimage', 'oci', 'oci-archive', 'docker-archive']);

export interface LoadedRecipes {
  /** Each target's recipe with its build args applied, by target name. */
  readonly byTarget: ReadonlyMap<string, Recipe>;
  readonly diagnostics: readonly Diagnostic[];
}

/** A templating error of a matrix variant names the variant (the first one it is found in; each error is reported once). */
function namingVariant(d: Diagnostic, target: Project['targets'][number]): Diagnostic {
  const values = Object.entries(target.origin?.matrix ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return { ...d, related: [...(d.related ?? []), { message: `in target '${target.name}' (${values}), a variant of '${target.origin?.base ?? target.name}'`, location: target.locations.name }] };
}

/**
 * Reads, parses and templates the recipe of every target (docs/ARCHITECTURE.md, Manifest and recipes). Each file's syntax
 * errors are reported once, however many targets use it; templating errors (an undefined
 * `{{ NAME }}`) are reported per distinct set of args. A recipe whose header source is not
 * supported yet is an error only where no `from:` takes its place.
 */
export function loadRecipes(project: Project, options: { cwd: string }): LoadedRecipes {
  const diagnostics: Diagnostic[] = [];
  const seen = new Set<string>();
  const parsed = new Map<string, Recipe | null>();
  const byTarget = new Map<string, Recipe>();
  const report = (ds: readonly Diagnostic[]): void => {
    for (const d of ds) {
      const key = `${d.location?.file}:${d.location?.line}:${d.location?.column}:${d.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      diagnostics.push(d);
    }
  };
  for (const target of project.targets) {
    if (target.recipe === undefined) continue;
    let recipe = parsed.get(target.recipe);
    if (recipe === undefined) {
      const file = displayPath(options.cwd, target.recipe);
      let text: string;
      try {
        // Synchronous: recipes are small, and a hundred awaited reads cost ~30 ms of round trips.
        text = readFileSync(target.recipe, 'utf8');
      } catch (e) {
        report([
          error('recipe-unreadable', `cannot read recipe ${file}: ${(e as Error).message}`, {
            ...(target.locations.recipe ? { location: target.locations.recipe } : {}),
          }),
        ]);
        parsed.set(target.recipe, null);
        continue;
      }
      const r = parseRecipe(text, { file });
      report(r.diagnostics);
      recipe = r.diagnostics.some((d) => d.severity === 'error') ? null : r.recipe;
      parsed.set(target.recipe, recipe);
    }
    if (recipe === null) continue;
    const resolved = resolveRecipe(recipe, { args: target.args });
    report(target.origin?.matrix ? resolved.diagnostics.map((d) => namingVariant(d, target)) : resolved.diagnostics);
    if (resolved.diagnostics.some((d) => d.severity === 'error')) continue;
    // Header values a build would refuse (a debootstrap suite or mirror that cannot be right).
    for (const [i, stage] of resolved.recipe.stages.entries()) {
      if (target.from && i === resolved.recipe.stages.length - 1) continue;
      const r = stage.bootstrap === 'debootstrap' ? debootstrapRequest(stage) : stage.bootstrap === 'docker' ? dockerFrom(stage) : stage.bootstrap === 'oras' ? orasFrom(stage) : undefined;
      if (r && !r.ok) report([r.error]);
    }
    const last = resolved.recipe.stages.at(-1);
    if (target.from === undefined) {
      report(checkSupported(resolved.recipe));
      if (last && last.bootstrap === undefined) {
        report([
          error('recipe-no-source', `target '${target.name}' has no source: its recipe has no 'Bootstrap:' header and the target no 'from:'`, {
            ...(target.locations.recipe ? { location: target.locations.recipe } : {}),
            hint: "add 'from: docker://IMAGE' (or target:NAME, or a path) to the target, or 'Bootstrap:' and 'From:' lines to the recipe",
          }),
        ]);
        continue;
      }
    }
    byTarget.set(target.name, resolved.recipe);
  }
  report(checkOutputs({ dir: project.dir, targets: project.targets, shown: (t) => shownOutput(project.dir, t), protectedPaths: recipeSources(project, byTarget, options.cwd) }));
  return { byTarget, diagnostics: sortDiagnostics(diagnostics) };
}

/** A `Bootstrap: docker` stage's `From:`, read as a build would read it (with `Registry:` and `Namespace:`). */
function dockerFrom(stage: Stage): Result<unknown> | undefined {
  const from = stage.header.get('from');
  if (from === undefined || from.value === '') return undefined; // 'needs a From: header', reported by the parser
  const registry = stage.header.get('registry')?.value;
  const namespace = stage.header.get('namespace')?.value;
  return parseReference(from.value, { registry, namespace, location: from.valueLocation });
}

/** A `Bootstrap: oras` stage's `From:` (`REGISTRY/REPOSITORY:TAG`, with or without `oras://`), read as the build reads it. */
function orasFrom(stage: Stage): Result<unknown> | undefined {
  const from = stage.header.get('from');
  if (from === undefined || from.value === '') return undefined; // 'needs a From: header', reported by the parser
  return parseReference(from.value.startsWith('oras://') ? from.value.slice('oras://'.length) : from.value, { location: from.valueLocation });
}

/** How an output reads in a message: relative to the project when it is inside, a sandbox with its '/'. */
function shownOutput(dir: string, t: Target): string {
  const rel = relative(dir, t.output);
  const text = rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : t.output;
  return t.format === 'sandbox' ? `${text}/` : text;
}

/**
 * What recipes read from the host, which no output may touch: `%files` sources (a glob by its
 * fixed folder) and header sources (`Bootstrap: localimage`, `oci`, archives) of every stage that a
 * target's `from:` does not replace. Paths in a recipe are relative to its folder.
 */
function recipeSources(project: Project, recipes: ReadonlyMap<string, Recipe>, cwd: string): ProtectedPath[] {
  const out: ProtectedPath[] = [];
  for (const target of project.targets) {
    const recipe = recipes.get(target.name);
    if (!recipe || target.recipe === undefined) continue;
    const recipeDir = dirname(target.recipe);
    const file = displayPath(cwd, target.recipe);
    for (const [i, stage] of recipe.stages.entries()) {
      const from = stage.header.get('from');
      const replaced = target.from !== undefined && i === recipe.stages.length - 1;
      if (!replaced && from !== undefined && from.value !== '' && LOCAL_AGENTS.has(stage.bootstrap ?? '')) {
        const path = stage.bootstrap === 'oci' ? from.value.replace(/:[^/:]*$/, '') : from.value;
        out.push({ path: fixedPart(recipeDir, path), what: `the source '${from.value}' of recipe ${file}`, location: from.valueLocation, owner: target.name });
      }
      for (const block of filesBlocks(stage)) {
        if (block.fromStage !== undefined) continue;
        for (const e of block.entries) out.push({ path: fixedPart(recipeDir, e.src), what: `the %files source '${e.src}' of recipe ${file}`, location: e.location, owner: target.name, readAroundOutputs: true });
      }
    }
  }
  return out;
}

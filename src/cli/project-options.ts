import { countSummary } from '../report/diagnostics.js';
import type { LoadProjectResult } from '../manifest/load-project.js';
import type { LoadedRecipes } from '../manifest/load-recipes.js';
import type { Project } from '../manifest/project.js';
import { stringOption, type OptionSpec, type ParsedArgs } from './args.js';
import { printDiagnostics, type CommandContext } from './command.js';

/** `-f FILE` and `-C DIR`, shared by every command that reads the manifest. */
export const PROJECT_OPTIONS: readonly OptionSpec[] = [
  { name: 'file', short: 'f', type: 'string', value: 'FILE', description: 'the manifest (default: orchestrator.yaml)' },
  { name: 'directory', short: 'C', type: 'string', value: 'DIR', description: 'the project folder (default: the current folder)' },
  { name: 'set', type: 'string', multiple: true, value: 'T.KEY=VALUE', description: "set a target's key (from, recipe, format, output, size, test, inputs, args_file, args.NAME); T may be a template or '*'" },
];

/** The `--set` values, in order. */
export function setOption(args: ParsedArgs): string[] {
  const v = args.options['set'];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

/** Loads the project named by -f/-C. The manifest code (and the YAML parser) loads on first use. */
export async function loadProjectFromArgs(ctx: CommandContext, args: ParsedArgs): Promise<LoadProjectResult> {
  const { loadProject } = await import('../manifest/load-project.js');
  return loadProject({ cwd: ctx.cwd, file: stringOption(args, 'file'), dir: stringOption(args, 'directory'), env: ctx.env, set: setOption(args), signal: ctx.signal });
}

/**
 * Loads the project named by -f/-C, prints its diagnostics, and returns it — or undefined after
 * printing the errors and their count (the caller exits 2).
 */
export async function requireProject(ctx: CommandContext, args: ParsedArgs): Promise<Project | undefined> {
  const { project, diagnostics } = await loadProjectFromArgs(ctx, args);
  printDiagnostics(ctx, diagnostics);
  if (project === undefined) ctx.stderr.write(`${countSummary(diagnostics)}\n`);
  return project;
}

/**
 * Loads the project named by -f/-C and every target's recipe, and prints their diagnostics; or
 * returns undefined after printing the errors and their count (the caller exits 2). `quiet`:
 * there was nothing to print.
 */
export async function requireProjectAndRecipes(ctx: CommandContext, args: ParsedArgs): Promise<{ project: Project; recipes: LoadedRecipes; quiet: boolean } | undefined> {
  const { project, diagnostics } = await loadProjectFromArgs(ctx, args);
  printDiagnostics(ctx, diagnostics);
  if (project === undefined) {
    ctx.stderr.write(`${countSummary(diagnostics)}\n`);
    return undefined;
  }
  const { loadRecipes } = await import('../manifest/load-recipes.js');
  const recipes = loadRecipes(project, { cwd: ctx.cwd });
  printDiagnostics(ctx, recipes.diagnostics);
  if (recipes.diagnostics.some((d) => d.severity === 'error')) {
    ctx.stderr.write(`${countSummary(recipes.diagnostics)}\n`);
    return undefined;
  }
  return { project, recipes, quiet: diagnostics.length === 0 && recipes.diagnostics.length === 0 };
}

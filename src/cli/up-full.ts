import { join } from 'node:path';
import { runUp } from '../executor/run-up.js';
import type { UpEvent } from '../executor/up-events.js';
import { expandSelection } from '../graph/expand-selection.js';
import { TargetGraph } from '../graph/target-graph.js';
import { ReadSet, recordWitness, takeProbe, type WitnessKey } from '../graph/witness.js';
import { readParsedCache, writeParsedCache } from '../manifest/parsed-cache.js';
import { Store } from '../store/store.js';
import { boolOption, stringOption, type ParsedArgs } from './args.js';
import { EXIT, printDiagnostics, type CommandContext } from './command.js';
import { requireProjectAndRecipes } from './project-options.js';
import { makeUpReporter, upRunOptions } from './up-run-options.js';

/**
 * `orchestrator up` (without --watch) in full: load the manifest and recipes, decide what is
 * stale, build it. When every target turns out fresh and nothing was said about the manifest or
 * recipes, the run leaves a witness of what it read for the next no-op `up` (src/graph/witness.ts).
 */
export async function runUpFull(ctx: CommandContext, args: ParsedArgs, options: { jobs: number; witness?: { stateDir: string; key: WitnessKey; seen: ReadonlyMap<string, string> } }): Promise<number> {
  // Taken before anything is read: what changes from here on cannot hide in a witness of this run.
  const probeMs = options.witness ? takeProbe(options.witness.stateDir) : undefined;
  const reads = options.witness ? new ReadSet() : undefined;
  // The manifest and recipes as the last quiet load left them, when none of their files changed.
  const parsedKey = options.witness ? { tool: String(options.witness.key['tool']), manifest: String(options.witness.key['manifest']), home: String(options.witness.key['home']), cwd: ctx.cwd } : undefined;
  const cached = options.witness && parsedKey ? await readParsedCache(options.witness.stateDir, parsedKey) : undefined;
  const loaded = cached ? { project: cached.project, recipes: { byTarget: cached.byTarget, diagnostics: [] }, quiet: true } : await requireProjectAndRecipes(ctx, args);
  if (loaded === undefined) return EXIT.usage;
  const { project, recipes } = loaded;
  if (!cached && loaded.quiet && options.witness && parsedKey && probeMs !== undefined) {
    await writeParsedCache(options.witness.stateDir, parsedKey, { project, byTarget: recipes.byTarget }, probeMs);
  }
  reads?.add(project.file);
  for (const t of project.targets) if (t.recipe !== undefined) reads?.add(t.recipe);
  const selection = expandSelection(project, args.positionals);
  if (!selection.ok) {
    printDiagnostics(ctx, selection.error);
    return EXIT.usage;
  }
  const graph = TargetGraph.fromProject(project);
  const order = graph.buildOrder(selection.value);
  const store = await Store.open({ dir: stringOption(args, 'cache-dir') ?? project.cacheDir, base: project.dir, env: ctx.env });
  const reporter = await makeUpReporter(ctx, args, order);
  let onlyFresh = true;
  const onEvent = (e: UpEvent): void => {
    if (e.type !== 'target-fresh' && e.type !== 'run-done') onlyFresh = false;
    reporter.listener(e);
  };
  const run = upRunOptions(ctx, args, store);
  try {
    const r = await runUp({
      ...run.options,
      project,
      recipes: recipes.byTarget,
      order,
      requested: new Set(selection.value),
      jobs: options.jobs,
      dryRun: boolOption(args, 'dry-run'),
      onEvent,
      signal: ctx.signal,
      ...(reads ? { reads } : {}),
    });
    await reporter.done();
    if (!r.ok) {
      printDiagnostics(ctx, [r.error]);
      return r.error.reason === 'project-locked' ? EXIT.failed : EXIT.usage;
    }
    if (r.value.interrupted) return EXIT.interrupted;
    const allFresh = onlyFresh && r.value.fresh === order.length && loaded.quiet;
    if (options.witness && reads && allFresh) {
      await recordWitness(options.witness.stateDir, options.witness.key, {
        reads,
        targets: order,
        probeMs,
        lockPath: join(options.witness.stateDir, 'lock'),
        seen: options.witness.seen,
      });
    }
    return r.value.failed > 0 ? EXIT.failed : EXIT.ok;
  } finally {
    await run.close();
  }
}

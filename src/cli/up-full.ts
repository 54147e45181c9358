import { runUp } from '../executor/run-up.js';
import type { UpEvent } from '../executor/up-events.js';
import type { UpWitness } from '../executor/up-witness.js';
import type { ReadSet } from '../freshness/read-set.js';
import { expandSelection } from '../graph/expand-selection.js';
import { TargetGraph } from '../graph/target-graph.js';
import { Store } from '../store/store.js';
import { boolOption, stringOption, type ParsedArgs } from './args.js';
import { EXIT, type CommandContext, failWith } from './command.js';
import { requireProjectAndRecipes } from './project-options.js';
import { remoteCacheFromArgs } from './remote-cache-options.js';
import { makeUpReporter, upRunOptions } from './up-run-options.js';

/**
 * `orchestrator up` (without --watch) in full: load the manifest and recipes, decide what is
 * stale, build it. The no-op witness (src/executor/up-witness.ts) is told what the run read and
 * how it ended, and decides whether to leave a witness for the next `up`.
 */
export async function runUpFull(ctx: CommandContext, args: ParsedArgs, options: { jobs: number; witness: UpWitness | undefined }): Promise<number> {
  const { witness } = options;
  // The manifest and recipes as the last quiet load left them, when none of their files changed.
  const cached = await witness?.loadParsed();
  const loaded = cached ? { project: cached.project, recipes: { byTarget: cached.byTarget, diagnostics: [] }, quiet: true } : await requireProjectAndRecipes(ctx, args);
  if (loaded === undefined) return EXIT.usage;
  const { project, recipes } = loaded;
  await witness?.parsed(project, recipes.byTarget, { quiet: loaded.quiet, fromCache: cached !== undefined });
  const selection = expandSelection(project, args.positionals);
  if (!selection.ok) {
    return failWith(ctx, selection.error);
  }
  const graph = TargetGraph.fromProject(project);
  const order = graph.buildOrder(selection.value);
  const store = await Store.open({ dir: stringOption(args, 'cache-dir') ?? project.cacheDir, base: project.dir, env: ctx.env });
  const reporter = await makeUpReporter(ctx, args, order);
  const onEvent = (e: UpEvent): void => {
    witness?.observe(e);
    reporter.listener(e);
  };
  const run = upRunOptions(ctx, args, store);
  const remote = await remoteCacheFromArgs(ctx, args, {
    store,
    ...(project.cacheRemote ? { manifest: { remote: project.cacheRemote.repository, push: project.cacheRemote.push } } : {}),
  });
  if (!remote.ok) {
    await run.close();
    return failWith(ctx, remote.error);
  }
  const upOn = (dryRun: boolean, listener: (e: UpEvent) => void, readSet: ReadSet | undefined): ReturnType<typeof runUp> =>
    runUp({
      ...run.options,
      project,
      recipes: recipes.byTarget,
      order,
      requested: new Set(selection.value),
      jobs: options.jobs,
      dryRun,
      onEvent: listener,
      signal: ctx.signal,
      ...(readSet ? { reads: readSet } : {}),
      ...(remote.value && !dryRun ? { remoteCache: remote.value.cache } : {}),
    });
  try {
    const r = await upOn(boolOption(args, 'dry-run'), onEvent, witness?.reads);
    await reporter.done();
    if (!r.ok) {
      return failWith(ctx, [r.error]);
    }
    if (r.value.interrupted) return EXIT.interrupted;
    await witness?.afterRun({ project, order, quiet: loaded.quiet, result: r.value, check: (listener, checkReads) => upOn(true, listener, checkReads) });
    return r.value.failed > 0 ? EXIT.failed : EXIT.ok;
  } finally {
    await run.close();
    await remote.value?.close();
  }
}

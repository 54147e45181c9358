import { statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { settledBefore } from '../core/file-system-now.js';
import { runUp } from '../executor/run-up.js';
import type { UpEvent } from '../executor/up-events.js';
import { expandSelection } from '../graph/expand-selection.js';
import type { StateDir } from '../state/state-dir.js';
import { TargetGraph } from '../graph/target-graph.js';
import { LOCK_FILE_NAME } from '../lock/lock-file.js';
import type { Project } from '../manifest/project.js';
import { FOLLOW, ReadSet, signatures } from '../freshness/read-set.js';
import { recordWitness, takeProbe, type WitnessKey } from '../freshness/witness.js';
import { readParsedCache, writeParsedCache, type ParsedKey } from '../state/parsed-cache.js';
import { Store } from '../store/store.js';
import { boolOption, stringOption, type ParsedArgs } from './args.js';
import { EXIT, type CommandContext, failWith } from './command.js';
import { requireProjectAndRecipes } from './project-options.js';
import { makeUpReporter, upRunOptions } from './up-run-options.js';

/**
 * `orchestrator up` (without --watch) in full: load the manifest and recipes, decide what is
 * stale, build it. When every target turns out fresh and nothing was said about the manifest or
 * recipes, the run leaves a witness of what it read for the next no-op `up` (src/freshness/witness.ts);
 * after a build that succeeded, it checks again as that next `up` would, for the same purpose.
 */
export async function runUpFull(ctx: CommandContext, args: ParsedArgs, options: { jobs: number; witness?: { paths: StateDir; key: WitnessKey; parsedKey: ParsedKey; seen: ReadonlyMap<string, string> } }): Promise<number> {
  // Taken before anything is read: what changes from here on cannot hide in a witness of this run.
  const probeMs = options.witness ? takeProbe(options.witness.paths) : undefined;
  const reads = options.witness ? new ReadSet() : undefined;
  // The manifest and recipes as the last quiet load left them, when none of their files changed.
  const cached = options.witness ? await readParsedCache(options.witness.paths, options.witness.parsedKey) : undefined;
  const loaded = cached ? { project: cached.project, recipes: { byTarget: cached.byTarget, diagnostics: [] }, quiet: true } : await requireProjectAndRecipes(ctx, args);
  if (loaded === undefined) return EXIT.usage;
  const { project, recipes } = loaded;
  if (!cached && loaded.quiet && options.witness && probeMs !== undefined) {
    await writeParsedCache(options.witness.paths, options.witness.parsedKey, { project, byTarget: recipes.byTarget }, probeMs);
  }
  reads?.add(project.file);
  for (const t of project.targets) if (t.recipe !== undefined) reads?.add(t.recipe);
  const selection = expandSelection(project, args.positionals);
  if (!selection.ok) {
    return failWith(ctx, selection.error);
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
    });
  try {
    const r = await upOn(boolOption(args, 'dry-run'), onEvent, reads);
    await reporter.done();
    if (!r.ok) {
      return failWith(ctx, [r.error]);
    }
    if (r.value.interrupted) return EXIT.interrupted;
    const allFresh = onlyFresh && r.value.fresh === order.length && loaded.quiet;
    if (options.witness && reads && allFresh) {
      await recordWitness(options.witness.paths, options.witness.key, {
        reads,
        targets: order,
        probeMs,
        seen: options.witness.seen,
      });
    } else if (options.witness && probeMs !== undefined && loaded.quiet && r.value.built > 0 && r.value.failed === 0 && r.value.skipped === 0) {
      await witnessAfterBuild(options.witness.paths, options.witness.key, {
        project,
        order,
        probeMs,
        check: (listener, checkReads) => upOn(true, listener, checkReads),
      });
    }
    return r.value.failed > 0 ? EXIT.failed : EXIT.ok;
  } finally {
    await run.close();
  }
}

/**
 * After a build that succeeded, the check the next `up` would make, made now and silently: when it
 * finds every target fresh, it leaves the witness that answers that next `up` at once. The manifest
 * and recipes were parsed before the build, so they must be unchanged since the run began
 * (`probeMs`); the check waits out the clock tick of the build's last writes (the project state,
 * orchestrator.lock) and takes a new probe, so that everything it reads predates it.
 */
async function witnessAfterBuild(
  paths: StateDir,
  key: WitnessKey,
  run: {
    readonly project: Project;
    readonly order: readonly string[];
    readonly probeMs: number;
    readonly check: (onEvent: (e: UpEvent) => void, reads: ReadSet) => ReturnType<typeof runUp>;
  },
): Promise<void> {
  const { project } = run;
  const parsedFrom = [project.file, ...new Set(project.targets.flatMap((t) => (t.recipe !== undefined ? [t.recipe] : [])))];
  const before = await signatures(parsedFrom, new Uint8Array(parsedFrom.length).fill(FOLLOW));
  if (!settledBefore(run.probeMs, before.newestCtimeMs, before.coarse)) return;
  let probe: number | undefined;
  for (let attempt = 0; attempt < 20; attempt++) {
    probe = takeProbe(paths);
    const written = [paths.state, join(project.dir, LOCK_FILE_NAME)].map((p) => statSync(p, { throwIfNoEntry: false })?.ctimeMs ?? 0);
    if (probe === undefined || Math.floor(Math.max(...written)) < probe) break;
    await sleep(2);
  }
  if (probe === undefined) return;
  const reads = new ReadSet();
  for (const p of parsedFrom) reads.add(p);
  let onlyFresh = true;
  const r = await run.check((e) => {
    if (e.type !== 'target-fresh' && e.type !== 'run-done') onlyFresh = false;
  }, reads);
  if (!r.ok || !onlyFresh || r.value.fresh !== run.order.length) return;
  await recordWitness(paths, key, { reads, targets: run.order, probeMs: probe });
}

import { cpus } from 'node:os';
import { expandSelection } from '../graph/expand-selection.js';
import { TargetGraph } from '../graph/target-graph.js';
import { runUp } from '../executor/run-up.js';
import { loadRecipes } from '../manifest/load-recipes.js';
import { countSummary } from '../report/diagnostics.js';
import { jsonUpReporter, plainUpReporter } from '../report/up-reporter.js';
import { Store } from '../store/store.js';
import { error } from '../core/diagnostic.js';
import { boolOption, stringOption } from './args.js';
import { plainReporterOptions, upRunOptions } from './up-run-options.js';
import { EXIT, printDiagnostics, useColor, type Command } from './command.js';
import { PROJECT_OPTIONS, requireProject } from './project-options.js';

export const command: Command = {
  spec: {
    name: 'up',
    summary: 'build what is stale, in dependency order and in parallel',
    usage: '[TARGET|GROUP ...] [--watch [--debounce MS]] [-j N] [--keep-going] [--force] [--pull] [--no-cache] [--notest] [--dry-run] [--progress P] [-f FILE] [-C DIR]',
    description: [
      "Builds the named targets and groups (default: the group 'default', else all targets) and what they",
      'are built from. A target whose key and output are unchanged does no work; a stale one says why and',
      'reuses every cached step it can. Exit status: 0 built, 1 a build failed, 2 bad manifest or recipe, 130 interrupted.',
      '',
      'With --watch, it then watches exactly what those builds read (the manifest, recipes, %files sources,',
      'declared inputs, local sources; never outputs, .orchestrator/ or the cache) and rebuilds the targets a',
      'change touched and those built from them; a change during a build stops the work it made stale and',
      'starts again. Errors and failed builds are printed and watching goes on. Ctrl-C stops the running',
      'build (cleaned up, previous outputs kept) and exits 130, as any interrupted up (and as a shell reports',
      'for tsc --watch), so that scripts can tell a stop from a finished build.',
    ].join('\n'),
    options: [
      { name: 'watch', short: 'w', type: 'boolean', description: 'after building, rebuild what each change touches, until Ctrl-C' },
      { name: 'debounce', type: 'string', value: 'MS', description: `with --watch: quiet time after the last change before rebuilding (default 200)` },
      { name: 'jobs', short: 'j', type: 'string', value: 'N', description: 'targets built at once (default: the number of CPUs)' },
      { name: 'keep-going', short: 'k', type: 'boolean', description: 'after a failure, build everything that does not depend on it' },
      { name: 'force', type: 'boolean', description: 'rebuild even fresh targets, and discard hand-made changes to sandboxes' },
      { name: 'pull', type: 'boolean', description: 'resolve registry tags again instead of using orchestrator.lock' },
      { name: 'no-cache', type: 'boolean', description: 'run every step again instead of using cached ones' },
      { name: 'notest', type: 'boolean', description: "don't run %test sections" },
      { name: 'dry-run', short: 'n', type: 'boolean', description: 'say what would be built, and why, without building' },
      { name: 'progress', type: 'string', value: 'P', choices: ['auto', 'tty', 'plain', 'json'], description: 'how to show progress' },
      { name: 'cache-dir', type: 'string', value: 'DIR', description: 'the cache folder (default: the manifest\'s cache.dir, $ORCHESTRATOR_CACHE, $XDG_CACHE_HOME/orchestrator)' },
      ...PROJECT_OPTIONS,
    ],
    positionals: { min: 0 },
  },
  async run(ctx, args) {
    // The watcher (chokidar and friends) loads only for --watch.
    if (boolOption(args, 'watch')) return (await import('./up-watch.js')).runUpWatch(ctx, args);
    if (stringOption(args, 'debounce') !== undefined) {
      printDiagnostics(ctx, [error('usage', '--debounce only applies with --watch')]);
      return EXIT.usage;
    }
    const project = await requireProject(ctx, args);
    if (project === undefined) return EXIT.usage;
    const recipes = loadRecipes(project, { cwd: ctx.cwd });
    printDiagnostics(ctx, recipes.diagnostics);
    if (recipes.diagnostics.some((d) => d.severity === 'error')) {
      ctx.stderr.write(`${countSummary(recipes.diagnostics)}\n`);
      return EXIT.usage;
    }
    const selection = expandSelection(project, args.positionals);
    if (!selection.ok) {
      printDiagnostics(ctx, selection.error);
      return EXIT.usage;
    }
    const jobsText = stringOption(args, 'jobs');
    const jobs = jobsText === undefined ? cpus().length : Number(jobsText);
    if (!Number.isInteger(jobs) || jobs < 1) {
      printDiagnostics(ctx, [error('usage', `-j '${jobsText}' is not a positive whole number`)]);
      return EXIT.usage;
    }
    const graph = TargetGraph.fromProject(project);
    const order = graph.buildOrder(selection.value);
    const store = await Store.open({ dir: stringOption(args, 'cache-dir') ?? project.cacheDir, base: project.dir, env: ctx.env });
    const progress = stringOption(args, 'progress') ?? 'auto';
    const tty = progress === 'tty' || (progress === 'auto' && ctx.stdout.isTTY === true && ctx.env['CI'] === undefined);
    const ttyReporter = tty ? (await import('../report/tty-up-reporter.js')).ttyUpReporter(ctx.stdout, ctx.stderr, order, { color: useColor(ctx) }) : undefined;
    const onEvent =
      progress === 'json'
        ? jsonUpReporter(ctx.stdout)
        : ttyReporter
          ? ttyReporter.listener
          : plainUpReporter(ctx.stdout, ctx.stderr, plainReporterOptions(ctx, progress));
    const run = upRunOptions(ctx, args, store);
    try {
      const r = await runUp({
        ...run.options,
        project,
        recipes: recipes.byTarget,
        order,
        requested: new Set(selection.value),
        jobs,
        dryRun: boolOption(args, 'dry-run'),
        onEvent,
        signal: ctx.signal,
      });
      await ttyReporter?.done();
      if (!r.ok) {
        printDiagnostics(ctx, [r.error]);
        return r.error.reason === 'project-locked' ? EXIT.failed : EXIT.usage;
      }
      if (r.value.interrupted) return EXIT.interrupted;
      return r.value.failed > 0 ? EXIT.failed : EXIT.ok;
    } finally {
      await run.close();
    }
  },
};

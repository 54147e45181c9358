import { error } from '../core/diagnostic.js';
import { UpWitness } from '../executor/up-witness.js';
import { boolOption, listOption, stringOption } from './args.js';
import { EXIT, type Command, failWith } from './command.js';
import { PROJECT_OPTIONS, setOption } from './project-options.js';
import { REMOTE_CACHE_OPTIONS } from './remote-cache-options.js';
import { jobsOption, makeUpReporter } from './up-run-options.js';
import { version } from './version.js';
import { buildModeNotice, FAKEROOT_OPTIONS } from './build-namespace.js';

export const command: Command = {
  spec: {
    name: 'up',
    summary: 'build what is stale, in dependency order and in parallel',
    usage:
      '[TARGET|GROUP ...] [--watch [--debounce MS]] [-j N] [--keep-going] [--force] [--pull] [--push] [--no-cache] [--notest] [--dry-run] [--progress P] [--set T.KEY=VALUE] [--cache-from REG/REPO ...] [--cache-to REG/REPO ...] [--fakeroot | --no-fakeroot] [-f FILE] [-C DIR]',
    description: [
      "Builds the named targets and groups (default: the group 'default', else all targets) and what they",
      'are built from. A target whose key and output are unchanged does no work; a stale one says why and',
      'reuses every cached step it can. A target with push: tags is pushed after its build when its output',
      'is not the one last pushed there (or with --push); a failed push fails the target and is tried again',
      'by the next up. Exit status: 0 built, 1 a build or push failed, 2 bad manifest or recipe, 130 interrupted.',
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
      { name: 'force', type: 'boolean', description: 'rebuild even fresh targets, discard hand-made changes to sandboxes, and take over an output path orchestrator did not write (saying what it replaces)' },
      { name: 'pull', type: 'boolean', description: 'resolve registry tags again instead of using orchestrator.lock' },
      { name: 'push', type: 'boolean', description: "push each target's 'push:' tags even when the output was pushed there already" },
      { name: 'no-cache', type: 'boolean', description: 'run every step again instead of using cached ones' },
      { name: 'notest', type: 'boolean', description: "don't run %test sections" },
      { name: 'dry-run', short: 'n', type: 'boolean', description: 'say what would be built, and why, without building' },
      { name: 'progress', type: 'string', value: 'P', choices: ['auto', 'tty', 'plain', 'json'], description: 'how to show progress' },
      { name: 'cache-dir', type: 'string', value: 'DIR', description: 'the cache folder (default: the manifest\'s cache.dir, $ORCHESTRATOR_CACHE, $XDG_CACHE_HOME/orchestrator)' },
      ...REMOTE_CACHE_OPTIONS,
      ...PROJECT_OPTIONS,
      ...FAKEROOT_OPTIONS,
    ],
    positionals: { min: 0 },
  },
  async run(ctx, args) {
    const started = Date.now();
    // Without root, one line says how this run builds (src/cli/build-namespace.ts); NDJSON stays clean.
    const notice = boolOption(args, 'dry-run') ? undefined : buildModeNotice(ctx);
    if (notice) (stringOption(args, 'progress') === 'json' ? ctx.stderr : ctx.stdout).write(`${notice}\n`);
    // The watcher (chokidar and friends) loads only for --watch.
    if (boolOption(args, 'watch')) {
      if (listOption(args, 'cache-from').length > 0 || listOption(args, 'cache-to').length > 0) {
        return failWith(ctx, [error('usage', '--cache-from and --cache-to do not apply with --watch', { hint: 'share steps with a plain up, e.g. in CI' })]);
      }
      if (boolOption(args, 'push')) {
        return failWith(ctx, [error('usage', '--push does not apply with --watch', { hint: "up --watch pushes a target's push: tags when a rebuild changes its output; run 'orchestrator up --push' to push them all" })]);
      }
      return (await import('./up-watch.js')).runUpWatch(ctx, args);
    }
    if (stringOption(args, 'debounce') !== undefined) {
      return failWith(ctx, [error('usage', '--debounce only applies with --watch')]);
    }
    const jobs = jobsOption(ctx, args);
    if (jobs === undefined) return EXIT.usage;
    // The no-op answer: when everything the last all-fresh run read is as it was, say so again
    // without loading the manifest, the recipes or the build engine (src/executor/up-witness.ts).
    const witness = UpWitness.for({
      cwd: ctx.cwd,
      dir: stringOption(args, 'directory'),
      file: stringOption(args, 'file'),
      targets: args.positionals,
      set: setOption(args),
      env: ctx.env,
      force: boolOption(args, 'force'),
      pull: boolOption(args, 'pull'),
      push: boolOption(args, 'push'),
      dryRun: boolOption(args, 'dry-run'),
      noCache: boolOption(args, 'no-cache'),
      noTest: boolOption(args, 'notest'),
      toolVersion: version(),
    });
    const fresh = await witness?.checkNoOp();
    if (fresh) {
      const reporter = await makeUpReporter(ctx, args, fresh);
      for (const target of fresh) reporter.listener({ type: 'target-fresh', target });
      reporter.listener({ type: 'run-done', summary: { built: 0, fresh: fresh.length, failed: 0, skipped: 0, stepsCached: 0, pushed: 0, pushedBytes: 0, ms: Date.now() - started, interrupted: false, fromWitness: true } });
      await reporter.done();
      return EXIT.ok;
    }
    return (await import('./up-full.js')).runUpFull(ctx, args, { jobs, witness });
  },
};

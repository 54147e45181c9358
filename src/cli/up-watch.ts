import { error } from '../core/diagnostic.js';
import { jsonWatchReporter, plainWatchReporter } from '../report/watch-reporter.js';
import { Store } from '../store/store.js';
import { runWatch } from '../watch/run-watch.js';
import { boolOption, stringOption, type ParsedArgs } from './args.js';
import { jobsOption, plainReporterOptions, upRunOptions } from './up-run-options.js';
import { EXIT, type CommandContext, failWith } from './command.js';
import { requireProject, setOption } from './project-options.js';

/** The default quiet time after the last change before a rebuild starts. */
/** Keep in step with the `--debounce` help of src/cli/up.ts. */
export const DEFAULT_DEBOUNCE_MS = 200;

/**
 * `orchestrator up --watch`: builds, then rebuilds what each burst of changes touched, until
 * Ctrl-C. Ctrl-C stops the running build (cleaned up as any interrupted build) and exits 130, the
 * status of an interrupted `up`, and what a shell reports for `tsc --watch` stopped with Ctrl-C.
 */
export async function runUpWatch(ctx: CommandContext, args: ParsedArgs): Promise<number> {
  if (boolOption(args, 'dry-run')) {
    return failWith(ctx, [error('usage', '--watch and --dry-run cannot be used together', { hint: "use 'orchestrator plan' to see what is stale" })]);
  }
  const debounceText = stringOption(args, 'debounce');
  const debounceMs = debounceText === undefined ? DEFAULT_DEBOUNCE_MS : Number(debounceText);
  if (!/^\d+$/.test(debounceText ?? '0') || !Number.isSafeInteger(debounceMs)) {
    return failWith(ctx, [error('usage', `--debounce '${debounceText}' is not a whole number of milliseconds`)]);
  }
  const jobs = jobsOption(ctx, args);
  if (jobs === undefined) return EXIT.usage;
  const project = await requireProject(ctx, args);
  if (project === undefined) return EXIT.usage;
  const store = await Store.open({ dir: stringOption(args, 'cache-dir') ?? project.cacheDir, base: project.dir, env: ctx.env });
  const progress = stringOption(args, 'progress') ?? 'auto';
  const onEvent =
    progress === 'json'
      ? jsonWatchReporter(ctx.stdout)
      : plainWatchReporter(ctx.stdout, ctx.stderr, plainReporterOptions(ctx, progress));
  const run = upRunOptions(ctx, args, store);
  try {
    const r = await runWatch({
      cwd: ctx.cwd,
      dir: stringOption(args, 'directory'),
      file: stringOption(args, 'file'),
      env: ctx.env,
      set: setOption(args),
      selection: args.positionals,
      // --cache-dir wins over the manifest's cache.dir; without it, a cache.dir edit takes effect.
      ...(stringOption(args, 'cache-dir') === undefined ? { storeFor: (dir: string | undefined) => Store.open({ dir, base: project.dir, env: ctx.env }) } : {}),
      up: { ...run.options, jobs },
      debounceMs,
      onEvent,
      signal: ctx.signal,
    });
    if (!r.ok) {
      return failWith(ctx, r.error);
    }
    return EXIT.interrupted;
  } finally {
    await run.close();
  }
}

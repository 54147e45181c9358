import { cpus } from 'node:os';
import { error } from '../core/diagnostic.js';
import type { RegistryClient } from '../registry/registry-client.js';
import type { Store } from '../store/store.js';
import type { UpEventListener } from '../executor/up-events.js';
import { jsonUpReporter, plainUpReporter, type PlainUpReporterOptions } from '../report/up-reporter.js';
import { boolOption, stringOption, type ParsedArgs } from './args.js';
import { printDiagnostics, useColor, type CommandContext } from './command.js';
import { makeRegistryClient } from './registry-client-factory.js';
import { version } from './version.js';

/** What `up` and `up --watch` pass to every run, from the command line. */
export interface UpRunOptions {
  readonly keepGoing: boolean;
  readonly force: boolean;
  readonly noCache: boolean;
  readonly noTest: boolean;
  readonly pull: boolean;
  /** `--push`: push every `push:` entry, due or not. */
  readonly push: boolean;
  readonly store: Store;
  readonly client: () => Promise<RegistryClient>;
  readonly epoch?: number;
  readonly toolVersion: string;
}

/** The run options, and `close` for the registry client they may have made. */
export function upRunOptions(ctx: CommandContext, args: ParsedArgs, store: Store): { options: UpRunOptions; close: () => Promise<void> } {
  let client: RegistryClient | undefined;
  const epochText = ctx.env['SOURCE_DATE_EPOCH'];
  return {
    options: {
      keepGoing: boolOption(args, 'keep-going'),
      force: boolOption(args, 'force'),
      noCache: boolOption(args, 'no-cache'),
      noTest: boolOption(args, 'notest'),
      pull: boolOption(args, 'pull'),
      push: boolOption(args, 'push'),
      store,
      client: async () => (client ??= await makeRegistryClient(ctx.env)),
      ...(epochText !== undefined && /^\d+$/.test(epochText) ? { epoch: Number(epochText) } : {}),
      toolVersion: version(),
    },
    close: async () => {
      await client?.close();
    },
  };
}

/** Plain progress lines: timestamped with `--progress plain` or in CI, coloured on a terminal. */
export function plainReporterOptions(ctx: CommandContext, progress: string): PlainUpReporterOptions {
  return { timestamps: progress === 'plain' || ctx.env['CI'] !== undefined, color: useColor(ctx), showOutput: true };
}

/**
 * The progress display `--progress` asks for: listr2 on a terminal (loaded only then), NDJSON
 * events, or plain lines. `done` waits for the display to finish drawing.
 */
export async function makeUpReporter(ctx: CommandContext, args: ParsedArgs, order: readonly string[]): Promise<{ listener: UpEventListener; done: () => Promise<void> }> {
  const progress = stringOption(args, 'progress') ?? 'auto';
  if (progress === 'json') return { listener: jsonUpReporter(ctx.stdout), done: async () => undefined };
  // A terminal that reports no width (some pseudo-terminals) would get one character a line.
  const columns = (ctx.stdout as { columns?: number }).columns ?? 0;
  if (progress === 'tty' || (progress === 'auto' && ctx.stdout.isTTY === true && columns > 0 && ctx.env['CI'] === undefined)) {
    const tty = (await import('../report/tty-up-reporter.js')).ttyUpReporter(ctx.stdout, ctx.stderr, order, { color: useColor(ctx) });
    return { listener: tty.listener, done: () => tty.done() };
  }
  return { listener: plainUpReporter(ctx.stdout, ctx.stderr, plainReporterOptions(ctx, progress)), done: async () => undefined };
}

/** `-j N` (default: the number of CPUs); undefined after printing why N is not a count (exit 2). */
export function jobsOption(ctx: CommandContext, args: ParsedArgs): number | undefined {
  const jobsText = stringOption(args, 'jobs');
  const jobs = jobsText === undefined ? cpus().length : Number(jobsText);
  if (Number.isInteger(jobs) && jobs >= 1) return jobs;
  printDiagnostics(ctx, [error('usage', `-j '${jobsText}' is not a positive whole number`)]);
  return undefined;
}

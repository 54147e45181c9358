import type { RegistryClient } from '../registry/registry-client.js';
import type { Store } from '../store/store.js';
import type { PlainUpReporterOptions } from '../report/up-reporter.js';
import { boolOption, type ParsedArgs } from './args.js';
import { useColor, type CommandContext } from './command.js';
import { makeRegistryClient } from './registry-client-factory.js';
import { version } from './version.js';

/** What `up` and `up --watch` pass to every run, from the command line. */
export interface UpRunOptions {
  readonly keepGoing: boolean;
  readonly force: boolean;
  readonly noCache: boolean;
  readonly noTest: boolean;
  readonly pull: boolean;
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

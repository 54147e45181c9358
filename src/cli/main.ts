import { setMaxListeners } from 'node:events';
import { error } from '../core/diagnostic.js';
import { isDiagnosticError } from '../core/diagnostic-error.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { helpText, parseArgs } from './args.js';
import { EXIT, type CommandContext, failWith } from './command.js';
import { COMMANDS } from './commands.js';
import { version } from './version.js';
import { enterBuildNamespace } from './build-namespace.js';
import { modeInside, watchReexecParent } from '../runtime/user-namespace.js';
import { ownValue } from '../core/name-table.js';

function topHelp(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(0, ...names.map((n) => n.length));
  return [
    'Usage: orchestrator COMMAND [OPTIONS] [ARGS...]',
    '',
    'Declarative, incremental builds of Singularity container images.',
    '',
    'Commands:',
    ...names.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n]!.summary}`),
    '',
    "Run 'orchestrator COMMAND --help' for a command's options.",
    '',
  ].join('\n');
}

export interface MainOptions {
  readonly ctx?: Partial<CommandContext>;
}

/** Runs one invocation and returns its exit code. Never throws. */
export async function main(argv: readonly string[], options: MainOptions = {}): Promise<number> {
  const controller = new AbortController();
  // Every running step, download and child process listens to the one run signal.
  setMaxListeners(1000, controller.signal);
  let interrupts = 0;
  // While a command runs again in the build namespace, this process only forwards signals to it
  // (src/runtime/user-namespace.ts) and waits for its exit status, however often it is interrupted.
  const run = { forwarding: false, mayReexec: options.ctx?.signal === undefined };
  const onSignal = (sig: NodeJS.Signals): void => {
    if (run.forwarding) return;
    interrupts++;
    if (interrupts > 1) process.exit(EXIT.interrupted);
    controller.abort(new Error(`interrupted by ${sig}`));
  };
  const installSignals = options.ctx?.signal === undefined;
  if (installSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  const ctx: CommandContext = {
    cwd: process.cwd(),
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
    signal: controller.signal,
    ...options.ctx,
  };
  try {
    const code = await dispatch(ctx, argv, run);
    // A command stopped by Ctrl-C while it read its input (a big manifest) ends as interrupted.
    return code === EXIT.usage && ctx.signal.aborted ? EXIT.interrupted : code;
  } catch (e) {
    // A store that cannot be opened safely (src/store/cache-root.ts) says why, as any failure.
    if (isDiagnosticError(e)) return failWith(ctx, [e.diagnostic]);
    // Expected failures are Diagnostics with a reason (src/core/reasons.ts); only a bug gets here.
    ctx.stderr.write(internalErrorText(argv, e));
    return EXIT.failed;
  } finally {
    if (installSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}

/** What a bug prints: that it is one, and what to put in a report of it. */
export function internalErrorText(argv: readonly string[], e: unknown): string {
  const detail = e instanceof Error ? (e.stack ?? e.message) : String(e);
  return [
    `orchestrator: internal error: ${e instanceof Error ? e.message : String(e)}`,
    'This is a bug in orchestrator, not a problem with your project. Please report it on the',
    "project's issue tracker, with the command, the version and the stack below (and, if you can,",
    'the orchestrator.yaml and recipe that trigger it):',
    `  command: orchestrator ${argv.join(' ')}`,
    `  version: orchestrator ${version()}, node ${process.version}, ${process.platform}-${process.arch}`,
    '  stack:',
    ...detail.split('\n').map((l) => `    ${l}`),
    '',
  ].join('\n');
}

async function dispatch(ctx: CommandContext, argv: readonly string[], run: { forwarding: boolean; readonly mayReexec: boolean }): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined;
    const help = topic !== undefined ? ownValue(COMMANDS, topic) : undefined;
    if (help) {
      ctx.stdout.write(helpText((await help.load()).spec));
      return EXIT.ok;
    }
    (first === undefined ? ctx.stderr : ctx.stdout).write(topHelp());
    return first === undefined ? EXIT.usage : EXIT.ok;
  }
  if (first === '--version' || first === '-V' || first === 'version') {
    ctx.stdout.write(`orchestrator ${version()}\n`);
    return EXIT.ok;
  }
  const entry = ownValue(COMMANDS, first);
  if (!entry) {
    const names = Object.keys(COMMANDS);
    const hint = first.startsWith('-')
      ? "options go after the command: 'orchestrator COMMAND --help'"
      : (didYouMeanHint(first, names) ?? "run 'orchestrator --help' for the list of commands");
    return failWith(ctx, [error('usage', `unknown command '${first}'`, { hint })]);
  }
  // `up` and `plan` given target names only (no option, so nothing to parse but names and no
  // usage error possible) choose the namespace before loading their code: the process re-executed
  // in it loads and parses them anyway (src/cli/build-namespace.ts).
  let decided = false;
  if (run.mayReexec && (first === 'up' || first === 'plan') && rest.every((a) => !a.startsWith('-'))) {
    run.forwarding = true;
    const inNamespace = await enterBuildNamespace(ctx, first, { options: {}, positionals: rest }, argv);
    run.forwarding = false;
    if (inNamespace !== undefined) return inNamespace;
    decided = true;
  }
  const command = await entry.load();
  const parsed = parseArgs(command.spec, rest);
  if (!parsed.ok) {
    return failWith(ctx, [parsed.error]);
  }
  if (parsed.value.options['help'] === true) {
    ctx.stdout.write(helpText(command.spec));
    return EXIT.ok;
  }
  // As a user that is not root, building (and what writes the store) runs in a user namespace:
  // this same command again, through unshare (src/cli/build-namespace.ts).
  // Only the real CLI re-executes itself: a test's in-process main (its own context) does not.
  if (run.mayReexec) {
    if (!decided) {
      run.forwarding = true;
      const inNamespace = await enterBuildNamespace(ctx, first, parsed.value, argv);
      run.forwarding = false;
      if (inNamespace !== undefined) return inNamespace;
    }
    // Re-executed in the namespace: if the outer process is SIGKILLed, stop as on SIGTERM.
    if (modeInside(ctx.env) !== undefined) {
      const stop = watchReexecParent(() => process.kill(process.pid, 'SIGTERM'));
      try {
        return await command.run(ctx, parsed.value);
      } finally {
        stop();
      }
    }
  }
  return command.run(ctx, parsed.value);
}

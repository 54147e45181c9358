import { open } from 'node:fs/promises';
import { runCommand, type CommandOutcome } from '../core/run-command.js';
import { starterArgv, starterPath, type StarterOp, type StarterPlan } from '../runtime/starter.js';

export interface StepSessionOptions {
  /** Mounts and other operations, in order (native/README.md). */
  readonly ops: readonly StarterOp[];
  readonly command: readonly string[];
  readonly cwd?: readonly string[];
  /** The command's whole environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Where the step's output goes (appended), besides the tail kept in the outcome. */
  readonly logFile?: string;
  readonly onOutput?: (chunk: Buffer) => void;
  readonly signal?: AbortSignal;
}

/**
 * Runs one build command in a starter session: private mount and pid namespaces. When the command
 * ends, the kernel kills every process it left behind (a daemon, `(sleep 9 &)`), so none outlives
 * the step or holds its output pipe open; when this process dies (even by SIGKILL), the session
 * dies with it and its mounts vanish. Output goes to the step's log and its tail to the outcome.
 */
export async function runStepSession(options: StepSessionOptions): Promise<CommandOutcome> {
  const plan: StarterPlan = {
    userns: false,
    pidns: true,
    ops: options.ops,
    cwd: options.cwd ?? ['/'],
    env: options.env,
    noNewPrivs: false,
    command: options.command,
  };
  const log = options.logFile ? await open(options.logFile, 'a') : undefined;
  try {
    return await runCommand(starterPath(), starterArgv(plan), {
      onOutput: (chunk) => {
        if (log) void log.write(chunk);
        options.onOutput?.(chunk);
      },
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } finally {
    await log?.close();
  }
}

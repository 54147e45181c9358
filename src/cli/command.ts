import type { Diagnostic } from '../core/diagnostic.js';
import { formatDiagnostics } from '../report/diagnostics.js';
import type { CommandSpec, ParsedArgs } from './args.js';

/** Where a command writes and what it runs in. Tests pass their own. */
export interface CommandContext {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Aborted on the first SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
}

export interface Command {
  readonly spec: CommandSpec;
  /** Returns the exit code (docs/ARCHITECTURE.md, Failures): 0 ok, 1 failed, 2 bad usage/manifest/recipe, 130 interrupted. */
  run(ctx: CommandContext, args: ParsedArgs): Promise<number>;
}

export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

export function useColor(ctx: CommandContext): boolean {
  return ctx.stderr.isTTY === true && ctx.env['NO_COLOR'] === undefined && ctx.env['CI'] === undefined;
}

export function printDiagnostics(ctx: CommandContext, diagnostics: readonly Diagnostic[]): void {
  if (diagnostics.length === 0) return;
  ctx.stderr.write(formatDiagnostics(diagnostics, { color: useColor(ctx) }) + '\n');
}

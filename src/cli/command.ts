import type { Diagnostic } from '../core/diagnostic.js';
import { reasonKind, type ReasonKind } from '../core/reasons.js';
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

/** The exit status of each kind of reason (src/core/reasons.ts; docs/ARCHITECTURE.md, Failures). */
const EXIT_OF_KIND: Readonly<Record<ReasonKind, number>> = {
  usage: EXIT.usage,
  manifest: EXIT.usage,
  recipe: EXIT.usage,
  reference: EXIT.usage,
  build: EXIT.failed,
  registry: EXIT.failed,
  runtime: EXIT.failed,
  internal: EXIT.failed,
  interrupted: EXIT.interrupted,
};

/**
 * The one place a failure becomes an exit status: 130 when the run was interrupted (`signal`
 * aborted, or any error says so), else 1 when any error is a failure of the work (build, registry,
 * runtime, internal), else 2 (bad usage, manifest, recipe or reference). 0 when there is no error.
 */
export function exitCodeOf(diagnostics: readonly Diagnostic[], signal?: AbortSignal): number {
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (signal?.aborted) return EXIT.interrupted;
  if (errors.length === 0) return EXIT.ok;
  const codes = errors.map((d) => EXIT_OF_KIND[reasonKind(d.reason)]);
  if (codes.includes(EXIT.interrupted)) return EXIT.interrupted;
  return codes.includes(EXIT.failed) ? EXIT.failed : EXIT.usage;
}

/** Prints `diagnostics` and returns the exit status they call for (exitCodeOf). */
export function failWith(ctx: CommandContext, diagnostics: readonly Diagnostic[]): number {
  printDiagnostics(ctx, diagnostics);
  return exitCodeOf(diagnostics, ctx.signal);
}

export function useColor(ctx: CommandContext): boolean {
  return ctx.stderr.isTTY === true && ctx.env['NO_COLOR'] === undefined && ctx.env['CI'] === undefined;
}

export function printDiagnostics(ctx: CommandContext, diagnostics: readonly Diagnostic[]): void {
  if (diagnostics.length === 0) return;
  ctx.stderr.write(formatDiagnostics(diagnostics, { color: useColor(ctx) }) + '\n');
}

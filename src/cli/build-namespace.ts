import type { Diagnostic } from '../core/diagnostic.js';
import { chooseBuildMode, currentBuildMode, hostFacts, modeLine, reexecInNamespace, type BuildMode, type FakerootChoice } from '../runtime/user-namespace.js';
import { boolOption, type OptionSpec, type ParsedArgs } from './args.js';
import { failWith, type CommandContext } from './command.js';

/** `--fakeroot` and `--no-fakeroot`, on every command that writes the store or builds. */
export const FAKEROOT_OPTIONS: readonly OptionSpec[] = [
  { name: 'fakeroot', type: 'boolean', description: 'build in a user namespace with your /etc/subuid range (subuid mode), even as root; fail when that is not possible' },
  { name: 'no-fakeroot', type: 'boolean', description: 'never use a user namespace: building then needs root' },
];

/**
 * The commands that build, read what builds wrote or write the store, and so run in the build
 * namespace when the caller is not root; `true` when the command cannot work without it (building),
 * `false` when it worked without one before (plan, pull, push, clean, cache, up --dry-run: then it
 * goes on outside when no namespace is possible).
 */
const NAMESPACE_COMMANDS: Readonly<Record<string, boolean>> = { up: true, build: true, plan: false, pull: false, push: false, clean: false, cache: false };

export function fakerootChoice(args: ParsedArgs): FakerootChoice | Diagnostic {
  const yes = boolOption(args, 'fakeroot');
  const no = boolOption(args, 'no-fakeroot');
  if (yes && no) return { severity: 'error', reason: 'usage', message: '--fakeroot and --no-fakeroot contradict each other', hint: 'give one of them' };
  return yes ? 'fakeroot' : no ? 'no-fakeroot' : 'auto';
}

/**
 * Before `command` runs: re-executes it in the build namespace when that is how it must run here
 * (src/runtime/user-namespace.ts) and returns the exit status; or undefined to run it in this
 * process (as root, inside the namespace already, or a command that needs none).
 */
export async function enterBuildNamespace(ctx: CommandContext, command: string, args: ParsedArgs, argv: readonly string[]): Promise<number | undefined> {
  const listed = NAMESPACE_COMMANDS[command];
  if (listed === undefined) return undefined;
  // `plan` and `up --dry-run` build nothing, but read sources and outputs as the build sees them
  // (owners are part of a tree's digest): in the namespace where there is one.
  const needs = listed && !(command === 'up' && boolOption(args, 'dry-run'));
  const choice = fakerootChoice(args);
  if (typeof choice !== 'string') return failWith(ctx, [choice]);
  // The common cases read nothing: root as root, and the process already in the namespace.
  if (choice !== 'fakeroot' && currentBuildMode(ctx.env) !== undefined) return undefined;
  const facts = hostFacts(ctx.env);
  const mode = chooseBuildMode(choice, facts, ctx.env);
  if (!mode.ok) return needs || choice !== 'auto' ? failWith(ctx, [mode.error]) : undefined;
  if (!mode.value.namespace) return undefined;
  const ran = await reexecInNamespace(mode.value, argv, ctx.env, facts);
  if ('code' in ran) return ran.code;
  // The namespace could not be made (nothing ran in it): an error, or the command goes on outside.
  return needs || choice !== 'auto' ? failWith(ctx, [ran.failed]) : undefined;
}

/** The mode `plan` shows: what `up` would build in, or why it could not build. */
export function plannedBuildMode(ctx: CommandContext, args: ParsedArgs): { mode: BuildMode; line: string } | { error: Diagnostic } {
  const choice = fakerootChoice(args);
  if (typeof choice !== 'string') return { error: choice };
  const mode = chooseBuildMode(choice, hostFacts(ctx.env), ctx.env);
  if (!mode.ok) return { error: mode.error };
  return { mode: mode.value.mode, line: modeLine(mode.value.mode) };
}

/** The line `up` prints before building when it builds without root (nothing as root). */
export function buildModeNotice(ctx: CommandContext): string | undefined {
  const mode = currentBuildMode(ctx.env);
  return mode === undefined || mode === 'root' ? undefined : modeLine(mode);
}

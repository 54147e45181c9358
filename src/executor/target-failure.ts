import { error, type Diagnostic } from '../core/diagnostic.js';
import { errnoDiagnostic, type ErrnoContext } from '../core/errno-failure.js';
import { formatReason, type StaleReason } from '../freshness/explain.js';
import type { Target } from '../manifest/project.js';
import { shownOutput } from './output-claim.js';

/**
 * What a target's boundary makes of an exception: a system failure (full disk, read-only or
 * unwritable path) as its diagnostic; anything else is a bug, said as one, and still only this
 * target's failure.
 */
export function targetFailure(e: unknown, context: ErrnoContext): Diagnostic {
  const known = errnoDiagnostic(e, context);
  if (known) return known;
  const detail = e instanceof Error ? (e.stack ?? e.message) : String(e);
  return error('unexpected', `${context.target}${context.step ? ` (${context.step})` : ''}: internal error (a bug; please report it):\n${detail}`);
}

/**
 * A sandbox changed by hand that cannot be used as it is: it was asked for by name, or its
 * recipe or sources changed too (`otherReasons`), so that building from it as it is would miss
 * that change and rebuilding it would lose the hand-made one.
 */
export function handModified(
  projectDir: string,
  target: Target,
  dirty: { readonly paths: readonly string[]; readonly count: number },
  otherReasons: readonly StaleReason[],
  dependents: readonly string[],
): Diagnostic {
  const n = dirty.count;
  const more = n > dirty.paths.length ? `\n  ... and ${n - dirty.paths.length} more` : '';
  const stale =
    otherReasons.length > 0
      ? `\nand it is stale besides: ${otherReasons.map(formatReason).join('; ')}${dependents.length > 0 ? `\n${dependents.join(', ')} ${dependents.length === 1 ? 'is' : 'are'} built from it: as it is, ${dependents.length === 1 ? 'it' : 'they'} would miss that change; rebuilt, the hand-made changes are lost` : ''}`
      : '';
  return error('sandbox-modified', `sandbox ${shownOutput(projectDir, target)} was modified by hand since it was built (${n} change${n === 1 ? '' : 's'}):\n  ${dirty.paths.join('\n  ')}${more}${stale}`, {
    location: target.locations.output ?? target.locations.name,
    hint: `move the changes into the recipe, or run 'orchestrator up --force ${target.name}' to discard them`,
  });
}

import { error, type Diagnostic } from '../core/diagnostic.js';
import { didYouMeanHint } from '../core/did-you-mean.js';
import { fail, ok, type Result } from '../core/result.js';
import type { Project } from '../manifest/project.js';

export const DEFAULT_GROUP = 'default';

/**
 * The target names that command-line names mean: each name is a target or a group (groups expand
 * recursively). No names means the group `default` when there is one, else every target. The result
 * keeps first-mention order without duplicates. Unknown names are errors with a did-you-mean, all
 * of them in one go.
 */
export function expandSelection(project: Pick<Project, 'targets' | 'groups'>, names: readonly string[]): Result<string[], Diagnostic[]> {
  const targets = new Set(project.targets.map((t) => t.name));
  const groups = new Map(project.groups.map((g) => [g.name, g.members]));
  let wanted = names;
  if (wanted.length === 0) wanted = groups.has(DEFAULT_GROUP) ? [DEFAULT_GROUP] : [...targets];

  const out = new Set<string>();
  const seenGroups = new Set<string>();
  const add = (n: string): void => {
    if (targets.has(n)) out.add(n);
    else if (groups.has(n) && !seenGroups.has(n)) {
      seenGroups.add(n);
      for (const m of groups.get(n) ?? []) add(m);
    }
  };
  const problems: Diagnostic[] = [];
  for (const n of wanted) {
    if (!targets.has(n) && !groups.has(n)) {
      problems.push(
        error('unknown-target', `unknown target or group '${n}'`, {
          hint: didYouMeanHint(n, [...targets, ...groups.keys()]) ?? knownTargets([...targets]),
        }),
      );
      continue;
    }
    add(n);
  }
  return problems.length > 0 ? fail(problems) : ok([...out]);
}

/** `known targets: a, b, c` — the first 12, then how many more (`orchestrator plan` lists them all). */
function knownTargets(names: readonly string[]): string {
  const shown = names.slice(0, 12).join(', ');
  return names.length > 12 ? `known targets: ${shown}, and ${names.length - 12} more (orchestrator plan lists them)` : `known targets: ${shown}`;
}

import { readFileSync, statSync, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Project, Target } from '../manifest/project.js';
import type { Recipe } from '../recipe/model.js';
import type { Platform } from '../registry/media-types.js';
import { explainChange, type StaleReason } from '../freshness/explain.js';
import { targetFingerprint, type Fingerprint } from '../freshness/fingerprint.js';
import type { InputFilter } from '../freshness/input-filter.js';
import type { ReadSet } from '../freshness/read-set.js';
import type { StatIndex } from '../freshness/stat-index.js';
import { diffTrees, treeIdentity, writtenTreeDigest, type TreeEntryDigest } from '../freshness/tree-digest.js';
import type { LockData } from '../lock/lock-file.js';
import type { OutputIdentity, ProjectState, TargetRecord } from '../state/project-state.js';

export interface TargetStatus {
  readonly name: string;
  readonly fingerprint: Fingerprint;
  readonly record: TargetRecord | undefined;
  readonly reasons: readonly StaleReason[];
  /** A sandbox update in place, or a build that was not recorded, was interrupted: the output is rewritten in full. */
  readonly interrupted: boolean;
  /** The output path exists and orchestrator wrote it (its record, or the pending mark of a build stopped before its record). */
  readonly owned: boolean;
  /** A build wrote this output and was stopped before recording it (its pending mark is there). */
  readonly unrecorded: boolean;
  /** Whether the output path exists at all. */
  readonly exists: boolean;
  /** Paths changed by hand in a sandbox output (first ones), and how many in all. */
  readonly dirty?: { readonly paths: readonly string[]; readonly count: number };
}

export function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * What the output is now. A sandbox's listing (`entries`) comes with it when `listing` is asked
 * for (after a build: the tree was just written, see writtenTreeDigest), or when the tree was
 * walked anyway (its stat signature is not the remembered one).
 */
export async function outputIdentity(
  target: Target,
  index: StatIndex,
  listing: false | { readonly clockDir: string },
  reads?: ReadSet,
): Promise<{ identity: OutputIdentity; entries?: readonly TreeEntryDigest[] } | undefined> {
  reads?.add(target.output);
  // Synchronous: a hundred targets' stat calls cost far less than as many thread-pool round trips.
  const st = statOrUndefined(target.output);
  if (!st) return undefined;
  if (target.format === 'sandbox') {
    if (!st.isDirectory()) return { identity: { kind: 'tree', digest: 'not-a-folder' } };
    const tree = listing ? await writtenTreeDigest(target.output, { index, clockDir: listing.clockDir }) : await treeIdentity(target.output, { index, ...(reads ? { reads } : {}) });
    return { identity: { kind: 'tree', digest: tree.digest }, ...(tree.entries ? { entries: tree.entries } : {}) };
  }
  return { identity: { kind: 'file', size: st.size, mtimeMs: st.mtimeMs, ino: st.ino } };
}

function sameIdentity(a: OutputIdentity, b: OutputIdentity): boolean {
  if (a.kind === 'tree' && b.kind === 'tree') return a.digest === b.digest;
  if (a.kind === 'file' && b.kind === 'file') return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
  return false;
}

/** The output path named by the pending mark of a build that was not recorded (StateDir.pending), if any. */
export function pendingOutput(state: ProjectState, name: string, reads?: ReadSet): string | undefined {
  const path = state.paths.pending(name);
  reads?.add(path);
  if (!statOrUndefined(path)) return undefined;
  try {
    const data = JSON.parse(readFileSync(path, 'utf8')) as { output?: unknown };
    return typeof data.output === 'string' ? data.output : undefined;
  } catch {
    return undefined;
  }
}

/** A sandbox changed since its recorded listing: the changes, as `A path`, `M path`, `D path`. */
async function handChanges(target: Target, state: ProjectState, entries: readonly TreeEntryDigest[]): Promise<{ dirty: NonNullable<TargetStatus['dirty']>; reason: StaleReason }> {
  const saved = await readFile(state.paths.treeListing(target.name), 'utf8').then(
    (t) => JSON.parse(t) as TreeEntryDigest[],
    () => [] as TreeEntryDigest[],
  );
  const changes = diffTrees(saved, entries);
  const n = changes.length;
  return {
    dirty: { paths: changes.slice(0, 20).map((c) => `${c.change === 'added' ? 'A' : c.change === 'removed' ? 'D' : 'M'} ${c.path}`), count: n },
    reason: {
      code: 'output-modified',
      message: `sandbox modified by hand since build (${n} change${n === 1 ? '' : 's'}: ${changes.slice(0, 3).map((c) => c.path).join(', ')}${n > 3 ? ', ...' : ''})`,
    },
  };
}

/** Everything `plan` and `up` need to know about one target before building it. */
export async function targetStatus(
  target: Target,
  options: {
    recipe: Recipe | undefined;
    state: ProjectState;
    lock: LockData;
    index: StatIndex;
    project: Project;
    platform: Platform;
    toolVersion: string;
    force?: boolean;
    memo?: Map<string, Promise<string>>;
    reads?: ReadSet;
    filter?: InputFilter;
  },
): Promise<TargetStatus> {
  const { state } = options;
  const fingerprint = await targetFingerprint(target, options.recipe, {
    projectDir: options.project.dir,
    lock: options.lock,
    platform: options.platform,
    index: options.index,
    outputOf: (name) => options.project.targets.find((t) => t.name === name)?.output,
    toolVersion: options.toolVersion,
    ...(options.memo ? { memo: options.memo } : {}),
    ...(options.reads ? { reads: options.reads } : {}),
    ...(options.filter ? { filter: options.filter } : {}),
  });
  const record = state.get(target.name);
  const reasons: StaleReason[] = [];
  let out = await outputIdentity(target, options.index, false, options.reads);
  let dirty: TargetStatus['dirty'];
  if (target.format === 'sandbox') options.reads?.add(state.paths.journal(target.name));
  const journal = target.format === 'sandbox' && statOrUndefined(state.paths.journal(target.name)) !== undefined;
  // A build that wrote its output but was stopped before recording it: ours, stale at worst.
  const unrecorded = pendingOutput(state, target.name, options.reads) === target.output;
  const interrupted = journal || unrecorded;
  // Of the type we write (a folder for a sandbox, a file for an image): a folder put where an image
  // was written, or a file where a sandbox was, is not what the record says we wrote.
  const ofOurType = out !== undefined && statOrUndefined(target.output)?.isDirectory() === (target.format === 'sandbox');
  const owned = ofOurType && (record?.output === target.output || unrecorded);
  if (!record) reasons.push({ code: 'never-built', message: 'never built' });
  else {
    reasons.push(...explainChange(record.components, fingerprint.components));
    if (record.output !== target.output) reasons.push({ code: 'format', message: `output changed from ${record.output} to ${target.output}` });
    if (!out) reasons.push({ code: 'output-missing', message: 'output missing' });
    else if (journal) reasons.push({ code: 'output-modified', message: 'an update of the sandbox was interrupted; it is written again' });
    else if (unrecorded) reasons.push({ code: 'output-modified', message: 'the last build was stopped before it was recorded; it is written again' });
    else if (!sameIdentity(record.identity, out.identity)) {
      reasons.push({ code: 'output-modified', message: 'output modified since build' });
      if (target.format === 'sandbox' && !out.entries) out = (await outputIdentity(target, options.index, { clockDir: state.paths.root })) ?? out;
      if (target.format === 'sandbox' && out.entries) {
        const hand = await handChanges(target, state, out.entries);
        dirty = hand.dirty;
        reasons[reasons.length - 1] = hand.reason;
      }
    }
  }
  if (reasons.length === 0 && options.force) reasons.push({ code: 'forced', message: 'rebuild forced (--force)' });
  return { name: target.name, fingerprint, record, reasons, interrupted, owned, unrecorded, exists: out !== undefined, ...(dirty ? { dirty } : {}) };
}

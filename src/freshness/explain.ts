import type { Located, TargetComponents } from './fingerprint.js';
import { ownValue } from '../core/name-table.js';

/** One reason a target is rebuilt, for people and for `plan --json`. */
export interface StaleReason {
  readonly code:
    | 'never-built'
    | 'output-missing'
    | 'output-modified'
    | 'tool'
    | 'source'
    | 'source-unresolved'
    | 'header'
    | 'section'
    | 'arg'
    | 'input'
    | 'format'
    | 'forced';
  readonly message: string;
  /** `recipes/app.def:14` where the change is, when it is in a file. */
  readonly where?: string;
}

const at = (l: Located | undefined): string | undefined => (l?.file !== undefined && l.line !== undefined ? `${l.file}:${l.line}` : undefined);

function diffRecords<T>(
  before: Readonly<Record<string, T>>,
  after: Readonly<Record<string, T>>,
  same: (a: T, b: T) => boolean,
): Array<{ key: string; change: 'added' | 'removed' | 'changed'; before?: T; after?: T }> {
  const out: Array<{ key: string; change: 'added' | 'removed' | 'changed'; before?: T; after?: T }> = [];
  for (const [k, v] of Object.entries(after)) {
    const old = ownValue(before, k);
    if (old === undefined) out.push({ key: k, change: 'added', after: v });
    else if (!same(old, v)) out.push({ key: k, change: 'changed', before: old, after: v });
  }
  for (const [k, v] of Object.entries(before)) if (ownValue(after, k) === undefined) out.push({ key: k, change: 'removed', before: v });
  return out.sort((a, b) => (a.key < b.key ? -1 : 1));
}

function short(id: string): string {
  return id.startsWith('sha256:') ? id.slice(0, 19) : id;
}

/**
 * Why a target must be rebuilt: a component-level diff of its recorded key against the key it
 * would have now (docs/ARCHITECTURE.md, Freshness). Empty when nothing changed.
 */
export function explainChange(before: TargetComponents, after: TargetComponents): StaleReason[] {
  const reasons: StaleReason[] = [];
  if (before.tool !== after.tool) reasons.push({ code: 'tool', message: `orchestrator changed (${before.tool} → ${after.tool})` });
  if (after.source.id === 'unresolved') {
    reasons.push({ code: 'source-unresolved', message: `base ${after.source.text} is not pinned to a digest yet (orchestrator.lock)` });
  } else if (before.source.text !== after.source.text) {
    reasons.push({ code: 'source', message: `source changed from ${before.source.text} to ${after.source.text}` });
  } else if (before.source.id !== after.source.id) {
    const what = after.source.text.startsWith('target:') ? `dependency ${after.source.text.slice('target:'.length)} changed` : `base ${after.source.text} moved to ${short(after.source.id)}`;
    reasons.push({ code: 'source', message: after.source.id === 'missing' ? `source ${after.source.text} is missing` : what });
  }
  for (const d of diffRecords(before.header, after.header, (a, b) => a.value === b.value)) {
    const where = at(d.after ?? d.before);
    reasons.push({
      code: 'header',
      message:
        d.change === 'changed'
          ? `header ${d.key} changed: ${d.before!.value} → ${d.after!.value}`
          : `header ${d.key} ${d.change === 'added' ? 'added' : 'removed'}`,
      ...(where ? { where } : {}),
    });
  }
  for (const d of diffRecords(before.sections, after.sections, (a, b) => a.value === b.value)) {
    const where = at(d.after ?? d.before);
    reasons.push({ code: 'section', message: `${d.key} ${d.change === 'changed' ? 'text changed' : d.change}`, ...(where ? { where } : {}) });
  }
  for (const d of diffRecords(before.args, after.args, (a, b) => a === b)) {
    reasons.push({
      code: 'arg',
      message: d.change === 'changed' ? `build arg ${d.key} changed: ${d.before} → ${d.after}` : `build arg ${d.key} ${d.change}`,
    });
  }
  for (const d of diffRecords(before.inputs, after.inputs, (a, b) => a === b)) {
    reasons.push({ code: 'input', message: d.after === 'missing' ? `input ${d.key} is missing` : `input ${d.key} ${d.change}` });
  }
  for (const d of diffRecords(before.format, after.format, (a, b) => a === b)) {
    reasons.push({
      code: 'format',
      message: d.change === 'changed' ? `${d.key} changed: ${d.before} → ${d.after}` : `${d.key} ${d.change === 'added' ? `set to ${d.after}` : 'unset'}`,
    });
  }
  return reasons;
}

/** `%post text changed (recipes/app.def:14)` */
export function formatReason(r: StaleReason): string {
  return r.where !== undefined ? `${r.message} (${r.where})` : r.message;
}

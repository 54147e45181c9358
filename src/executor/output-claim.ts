import { lstat, readdir, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { formatBytes } from '../core/errno-failure.js';
import type { StaleReason } from '../freshness/explain.js';
import type { Target } from '../manifest/project.js';

/** What is at a path: its first entries (by name), how many files and folders in all, and their bytes. */
export interface PathContent {
  readonly first: readonly string[];
  readonly count: number;
  readonly bytes: number;
}

/** Walks what is at `path` (without following links). */
export async function pathContent(path: string, show = 5): Promise<PathContent> {
  const first: string[] = [];
  let count = 0;
  let bytes = 0;
  const walk = async (abs: string, rel: string): Promise<void> => {
    const st = await lstat(abs);
    if (rel !== '') {
      count++;
      if (first.length < show) first.push(st.isDirectory() ? `${rel}/` : rel);
    }
    if (!st.isDirectory()) {
      bytes += st.size;
      return;
    }
    for (const name of (await readdir(abs)).sort()) await walk(join(abs, name), rel === '' ? name : `${rel}/${name}`);
  };
  const st = await lstat(path);
  if (!st.isDirectory()) return { first: [], count: 1, bytes: st.size };
  await walk(path, '');
  return { first, count, bytes };
}

/** `3 entries, 12.0 KiB: a.txt, b/, ...` */
export function describeContent(c: PathContent): string {
  const list = c.first.length > 0 ? `: ${c.first.join(', ')}${c.count > c.first.length ? ', ...' : ''}` : '';
  return `${c.count} entr${c.count === 1 ? 'y' : 'ies'}, ${formatBytes(c.bytes)}${list}`;
}

/** The output as people see it: relative to the project, a folder with its slash. */
export function shownOutput(projectDir: string, target: Target): string {
  const rel = relative(projectDir, target.output);
  const shown = rel === '' || rel.startsWith('..') ? target.output : rel;
  return `${shown}${target.format === 'sandbox' ? '/' : ''}`;
}

/**
 * The records rule (nothing lost): orchestrator replaces only what it wrote. An output path that
 * exists but is not ours is refused, naming what is there; with --force it is taken over, and the
 * returned reason says what is replaced. An empty folder (or empty file) loses nothing: taken silently.
 */
export async function claimOutput(
  target: Target,
  options: { readonly projectDir: string; readonly exists: boolean; readonly owned: boolean; readonly force: boolean },
): Promise<{ ok: true; takeover?: StaleReason } | { ok: false; error: Diagnostic }> {
  if (!options.exists || options.owned) return { ok: true };
  const content = await pathContent(target.output);
  if (content.bytes === 0 && content.count <= 1 && content.first.length === 0) return { ok: true };
  const shown = shownOutput(options.projectDir, target);
  if (options.force) {
    return { ok: true, takeover: { code: 'forced', message: `taking over ${shown}, not written by orchestrator (--force): replacing ${describeContent(content)}` } };
  }
  return {
    ok: false,
    error: error('output-not-ours', `${shown} already exists and orchestrator did not write it (${describeContent(content)}); it is left as it is`, {
      location: target.locations.output ?? target.locations.name,
      hint: `move it away or point 'output:' elsewhere; or run 'orchestrator up --force ${target.name}' to replace it (what is there is lost)`,
    }),
  };
}

/**
 * A path taken over (empty, or with --force) that is of the other type than the output (a folder
 * where an image file goes, a file or link where a sandbox goes) cannot be replaced by a rename:
 * it is removed before the build. Nothing of ours is lost: it is empty, or --force said so.
 */
export async function clearTakenOver(target: Target): Promise<void> {
  const st = await lstat(target.output).catch(() => undefined);
  if (st && st.isDirectory() !== (target.format === 'sandbox')) await rm(target.output, { recursive: true, force: true });
}

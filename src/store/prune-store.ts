import { rm } from 'node:fs/promises';
import type { Store, StoreEntry } from './store.js';

export interface PruneOptions {
  /** Store paths some project still uses (absolute): never removed. */
  readonly referenced: ReadonlySet<string>;
  /** Remove only entries not used for this long (ms). */
  readonly olderThanMs?: number;
  /** Remove least recently used entries until the store holds at most this many bytes. */
  readonly keepBytes?: number;
  /** Block cache entries used since this time (ms) are kept: a project's last export used them (Store.blockUseMark). */
  readonly blocksUsedSince?: number;
  readonly dryRun?: boolean;
  readonly now?: number;
}

export interface PruneResult {
  readonly removed: readonly StoreEntry[];
  readonly freedBytes: number;
  readonly keptReferenced: number;
  readonly totalBytesAfter: number;
  /** The block cache's part of `removed`/`freedBytes`, and the temps its killed writers left (removed whatever the limits). */
  readonly blocks: { readonly removed: number; readonly freedBytes: number; readonly temps: number };
}

/**
 * Removes cache entries no project uses, least recently used first (`cache prune`; docs/ARCHITECTURE.md, Store).
 * With neither limit, every unreferenced entry goes; `olderThanMs` keeps recently used ones;
 * `keepBytes` stops once the store is small enough. Temps of live processes are never touched.
 * Block cache entries (one per file content or fragment block, and the digest memo) count as used
 * when their mtime is from the hour `blocksUsedSince` falls in on; the squashfs writer marks the
 * entries it uses (once per hour).
 */
export async function pruneStore(store: Store, options: PruneOptions): Promise<PruneResult> {
  const now = options.now ?? Date.now();
  const temps = options.dryRun ? 0 : await store.sweepBlockTemps();
  // The writer marks an entry only once per hour (a still ctime keeps its checked-entry memo
  // valid): an entry used since the mark has an mtime from the mark's hour on.
  const blocksSince = options.blocksUsedSince === undefined ? undefined : Math.floor(options.blocksUsedSince / 3_600_000) * 3_600_000;
  const entries = (await store.list()).filter((e) => e.kind !== 'tmp');
  let total = entries.reduce((n, e) => n + e.bytes, 0);
  const used = (e: StoreEntry): boolean =>
    e.kind === 'block' ? blocksSince !== undefined && e.mtime.getTime() >= blocksSince : options.referenced.has(e.path);
  const candidates = entries
    .filter((e) => !used(e))
    .sort((a, b) => a.mtime.getTime() - b.mtime.getTime());
  const removed: StoreEntry[] = [];
  let freed = 0;
  for (const e of candidates) {
    if (options.olderThanMs !== undefined && now - e.mtime.getTime() < options.olderThanMs) continue;
    if (options.keepBytes !== undefined && total <= options.keepBytes) break;
    if (!options.dryRun) await rm(e.path, { recursive: true, force: true });
    removed.push(e);
    freed += e.bytes;
    total -= e.bytes;
  }
  const blocks = removed.filter((e) => e.kind === 'block');
  return {
    removed,
    freedBytes: freed,
    keptReferenced: entries.length - candidates.length,
    totalBytesAfter: total,
    blocks: { removed: blocks.length, freedBytes: blocks.reduce((n, e) => n + e.bytes, 0), temps },
  };
}

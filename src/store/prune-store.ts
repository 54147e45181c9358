import { rm } from 'node:fs/promises';
import type { Store, StoreEntry } from './store.js';

export interface PruneOptions {
  /** Store paths some project still uses (absolute): never removed. */
  readonly referenced: ReadonlySet<string>;
  /** Remove only entries not used for this long (ms). */
  readonly olderThanMs?: number;
  /** Remove least recently used entries until the store holds at most this many bytes. */
  readonly keepBytes?: number;
  readonly dryRun?: boolean;
  readonly now?: number;
}

export interface PruneResult {
  readonly removed: readonly StoreEntry[];
  readonly freedBytes: number;
  readonly keptReferenced: number;
  readonly totalBytesAfter: number;
}

/**
 * Removes cache entries no project uses, least recently used first (`cache prune`; docs/ARCHITECTURE.md, Store).
 * With neither limit, every unreferenced entry goes; `olderThanMs` keeps recently used ones;
 * `keepBytes` stops once the store is small enough. Temps of live processes are never touched.
 */
export async function pruneStore(store: Store, options: PruneOptions): Promise<PruneResult> {
  const now = options.now ?? Date.now();
  const entries = (await store.list()).filter((e) => e.kind !== 'tmp');
  let total = entries.reduce((n, e) => n + e.bytes, 0);
  const candidates = entries
    .filter((e) => !options.referenced.has(e.path))
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
  return { removed, freedBytes: freed, keptReferenced: entries.length - candidates.length, totalBytesAfter: total };
}

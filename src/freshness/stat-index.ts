import { readFile } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import type { Digest } from '../core/digest.js';
import { settledBefore } from '../core/file-system-now.js';
import { writeFileAtomic } from '../core/fs-atomic.js';

interface Entry {
  /** size:mtimeNs:ctimeNs:ino:dev */
  readonly stat: string;
  readonly sha256: string;
}

interface TreeEntry {
  /** The stat signature of the whole tree (native treeStat). */
  readonly signature: string;
  readonly digest: Digest;
}

/**
 * How old (by ctime) a file or tree must be, relative to when it was looked at, for its hash to be
 * remembered. A change made in the same clock tick as the hashing can leave every stat field as it
 * was: such an entry is hashed again next time instead ("racy git"). ctime is the one time user
 * space cannot set. Linux file systems with nanosecond times (ext4, xfs, btrfs, tmpfs, overlay)
 * stamp with the kernel's coarse clock, one tick (at most 10 ms) behind: 50 ms covers it. A
 * ctime on a whole second marks a file system with whole-second times (ext3 with small inodes,
 * FAT, some network file systems): there a change within the same second can hide, so 2 s.
 */
export function racyMarginMs(ctimeMs: number): number {
  return ctimeMs % 1000 === 0 ? MAX_RACY_MARGIN_MS : 50;
}

export const MAX_RACY_MARGIN_MS = 2000;

/**
 * Remembers the content hash of files, and the tree digest of folders, by their stat fields
 * (docs/ARCHITECTURE.md, Keys). The stat fields only let a re-hash be skipped: a file whose size, mtime, ctime,
 * inode or device changed is hashed again, a tree whose stat signature changed is walked again,
 * and the key is always the content hash.
 */
export class StatIndex {
  #entries = new Map<string, Entry>();
  #trees = new Map<string, TreeEntry>();
  #dirty = false;

  private constructor(readonly file: string | undefined) {}

  static inMemory(): StatIndex {
    return new StatIndex(undefined);
  }

  /** Loads the index; a missing or unreadable file starts empty (it is only a cache). */
  static async load(file: string): Promise<StatIndex> {
    const index = new StatIndex(file);
    try {
      const data = JSON.parse(await readFile(file, 'utf8')) as { version: number; entries: Record<string, Entry>; trees?: Record<string, TreeEntry> };
      if (data.version === 1) {
        for (const [k, v] of Object.entries(data.entries)) index.#entries.set(k, v);
        for (const [k, v] of Object.entries(data.trees ?? {})) index.#trees.set(k, v);
      }
    } catch {
      // Start empty.
    }
    return index;
  }

  static statKey(st: Pick<Stats, 'size' | 'mtimeMs' | 'ctimeMs' | 'ino' | 'dev'> & { mtimeNs?: bigint; ctimeNs?: bigint }): string {
    const m = st.mtimeNs ?? BigInt(Math.round(st.mtimeMs * 1e6));
    const c = st.ctimeNs ?? BigInt(Math.round(st.ctimeMs * 1e6));
    return `${st.size}:${m}:${c}:${st.ino}:${st.dev}`;
  }

  lookup(path: string, statKey: string): string | undefined {
    const e = this.#entries.get(path);
    return e && e.stat === statKey ? e.sha256 : undefined;
  }

  /**
   * Remembers a file's hash. `seenAtMs` is when its stat was taken (before its content was read):
   * a file changed (`ctimeMs`) within racyMarginMs of it is not remembered.
   */
  remember(path: string, statKey: string, sha256: string, times: { readonly ctimeMs: number; readonly seenAtMs: number }): void {
    if (times.ctimeMs >= times.seenAtMs - racyMarginMs(times.ctimeMs)) return;
    const e = this.#entries.get(path);
    if (e && e.stat === statKey && e.sha256 === sha256) return;
    this.#entries.set(path, { stat: statKey, sha256 });
    this.#dirty = true;
  }

  lookupTree(path: string, signature: string): Digest | undefined {
    const e = this.#trees.get(path);
    return e && e.signature === signature ? e.digest : undefined;
  }

  /**
   * Remembers a tree's digest by its stat signature, on the same terms as `remember`; or, given
   * `fsNowMs` (fileSystemNow, taken before the signature), when every ctime in the tree is older
   * than that, which is exact on file systems with sub-second times.
   */
  rememberTree(
    path: string,
    signature: string,
    digest: Digest,
    times: { readonly newestCtimeMs: number; readonly coarse: boolean } & ({ readonly seenAtMs: number } | { readonly fsNowMs: number }),
  ): void {
    const trusted =
      'fsNowMs' in times
        ? settledBefore(times.fsNowMs, times.newestCtimeMs, times.coarse)
        : times.newestCtimeMs < times.seenAtMs - (times.coarse ? MAX_RACY_MARGIN_MS : racyMarginMs(times.newestCtimeMs));
    if (!trusted) return;
    const e = this.#trees.get(path);
    if (e && e.signature === signature && e.digest === digest) return;
    this.#trees.set(path, { signature, digest });
    this.#dirty = true;
  }

  async save(): Promise<void> {
    if (!this.file || !this.#dirty) return;
    await writeFileAtomic(this.file, JSON.stringify({ version: 1, entries: Object.fromEntries(this.#entries), trees: Object.fromEntries(this.#trees) }));
    this.#dirty = false;
  }
}

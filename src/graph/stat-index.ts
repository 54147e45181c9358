import { readFile } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { writeFileAtomic } from '../core/fs-atomic.js';

interface Entry {
  /** size:mtimeNs:ctimeNs:ino:dev */
  readonly stat: string;
  readonly sha256: string;
}

/**
 * Remembers the content hash of files by their stat fields (DESIGN.md 3.1). The stat fields only
 * let a re-hash be skipped: a file whose size, mtime, ctime, inode or device changed is hashed
 * again, and the key is always the content hash.
 */
export class StatIndex {
  #entries = new Map<string, Entry>();
  #dirty = false;

  private constructor(readonly file: string | undefined) {}

  static inMemory(): StatIndex {
    return new StatIndex(undefined);
  }

  /** Loads the index; a missing or unreadable file starts empty (it is only a cache). */
  static async load(file: string): Promise<StatIndex> {
    const index = new StatIndex(file);
    try {
      const data = JSON.parse(await readFile(file, 'utf8')) as { version: number; entries: Record<string, Entry> };
      if (data.version === 1) for (const [k, v] of Object.entries(data.entries)) index.#entries.set(k, v);
    } catch {
      // Start empty.
    }
    return index;
  }

  static statKey(st: Stats & { mtimeNs?: bigint; ctimeNs?: bigint }): string {
    const m = st.mtimeNs ?? BigInt(Math.round(st.mtimeMs * 1e6));
    const c = st.ctimeNs ?? BigInt(Math.round(st.ctimeMs * 1e6));
    return `${st.size}:${m}:${c}:${st.ino}:${st.dev}`;
  }

  lookup(path: string, statKey: string): string | undefined {
    const e = this.#entries.get(path);
    return e && e.stat === statKey ? e.sha256 : undefined;
  }

  remember(path: string, statKey: string, sha256: string): void {
    const e = this.#entries.get(path);
    if (e && e.stat === statKey && e.sha256 === sha256) return;
    this.#entries.set(path, { stat: statKey, sha256 });
    this.#dirty = true;
  }

  async save(): Promise<void> {
    if (!this.file || !this.#dirty) return;
    const entries = Object.fromEntries([...this.#entries].sort(([a], [b]) => (a < b ? -1 : 1)));
    await writeFileAtomic(this.file, JSON.stringify({ version: 1, entries }));
    this.#dirty = false;
  }
}

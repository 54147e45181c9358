import { createHash, randomBytes } from 'node:crypto';
import { pidAlive } from '../core/pid-alive.js';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex, isDigest, type Digest } from '../core/digest.js';
import { BlobStore } from './blob-store.js';
import { ownStoreRoot, resolveCacheRoot, type CacheRootOptions } from './cache-root.js';
import { hostUid } from '../core/id-map.js';

export type StoreEntryKind = 'blob' | 'layer' | 'snapshot' | 'block' | 'tmp';

export interface StoreEntry {
  readonly kind: StoreEntryKind;
  /** `sha256:<hex>` for blobs and layers, the key for snapshots, `files/<key>` or `fragments/<key>` for blocks, the file name for tmp. */
  readonly id: string;
  readonly path: string;
  /** Apparent size in bytes (a folder: its regular files and symlinks, hard links counted once). */
  readonly bytes: number;
  readonly mtime: Date;
}

export interface StoreUsage {
  readonly root: string;
  readonly kinds: Readonly<Record<StoreEntryKind, { readonly count: number; readonly bytes: number }>>;
  readonly totalBytes: number;
}

const KIND_DIRS: Readonly<Record<StoreEntryKind, string>> = {
  blob: join('blobs', 'sha256'),
  layer: 'layers',
  snapshot: 'snapshots',
  block: 'blocks',
  tmp: 'tmp',
};

/** The squashfs writer's block cache: `blocks/<part>/<xx>/<key>` (native/squashfs/README.md, Block cache). */
const BLOCK_PARTS = ['files', 'fragments', 'listings'] as const;
/**
 * The writer's temp names: `<entry>.tmp-XXXXXX` beside the entry (mkostemp), and the older
 * `<entry>.tmp-<pid>-<n>`. A temp's name says nothing about its process (a session's pid).
 */
const BLOCK_TEMP = /\.tmp-(?:[A-Za-z0-9]{6}|\d+-\d+)$/;
/** The writer's digest memo (native/squashfs/README.md, Block cache): one file, listed as a block entry. */
const BLOCK_MEMO = 'digests';

async function treeBytes(path: string, seen: Set<string>): Promise<number> {
  const st = await lstat(path);
  if (!st.isDirectory()) {
    const id = `${st.dev}:${st.ino}`;
    if (st.nlink > 1) {
      if (seen.has(id)) return 0;
      seen.add(id);
    }
    return st.isFile() || st.isSymbolicLink() ? st.size : 0;
  }
  let total = 0;
  for (const name of await readdir(path)) total += await treeBytes(join(path, name), seen);
  return total;
}

/**
 * The cache folder (docs/ARCHITECTURE.md, Store), shared by every project of a user and safe for concurrent
 * processes:
 *
 *     ROOT/blobs/sha256/<hex>     verified registry blobs (BlobStore)
 *     ROOT/layers/<diffid-hex>/   unpacked layers (overlay format), written by src/layers
 *     ROOT/snapshots/<key>/       a step's overlay upper folder and metadata, written by the engine
 *     ROOT/blocks/                the squashfs writer's compressed blocks by content (native/squashfs)
 *     ROOT/tmp/                   temp files and folders, same file system, for atomic renames
 *
 * Temp names start with the writer's pid; `open` removes those whose process is gone.
 */
export class Store {
  readonly blobs: BlobStore;

  private constructor(readonly root: string) {
    this.blobs = new BlobStore(join(root, KIND_DIRS.blob), join(root, KIND_DIRS.tmp));
  }

  /** Resolves the root (explicit dir, `$ORCHESTRATOR_CACHE`, `$XDG_CACHE_HOME/orchestrator`, `~/.cache/orchestrator`), creates the layout, sweeps dead temps. */
  static async open(options: CacheRootOptions = {}): Promise<Store> {
    const store = new Store(await ownStoreRoot(resolveCacheRoot(options), options.hostUid ?? hostUid(options.env ?? process.env)));
    for (const dir of Object.values(KIND_DIRS)) await mkdir(join(store.root, dir), { recursive: true });
    await store.sweepTemps();
    return store;
  }

  get tmpDir(): string {
    return join(this.root, KIND_DIRS.tmp);
  }

  get layersDir(): string {
    return join(this.root, KIND_DIRS.layer);
  }

  /** `ROOT/blocks`: the block cache of native/squashfs/orchestrator-mksquashfs (`--block-cache`). */
  get blocksDir(): string {
    return join(this.root, KIND_DIRS.block);
  }

  get snapshotsDir(): string {
    return join(this.root, KIND_DIRS.snapshot);
  }

  blobPath(digest: Digest): string {
    return this.blobs.path(digest);
  }

  /** `ROOT/layers/<diffid-hex>` — the unpacked layer whose uncompressed digest is `diffId`. */
  layerPath(diffId: Digest): string {
    return join(this.layersDir, digestHex(diffId));
  }

  /** `ROOT/snapshots/<key>`; `key` is a step key (hex or `sha256:hex`). */
  snapshotPath(key: string): string {
    const k = key.startsWith('sha256:') ? key.slice('sha256:'.length) : key;
    if (!/^[0-9a-zA-Z_.-]+$/.test(k) || k.startsWith('.')) throw new Error(`snapshotPath: invalid key '${key}'`);
    return join(this.snapshotsDir, k);
  }

  /** A fresh path under `tmp/` (not created), named `<pid>-<random>-<label>`. */
  tempPath(label = 'tmp'): string {
    return join(this.tmpDir, `${process.pid}-${randomBytes(6).toString('hex')}-${label.replace(/[^\w.-]/g, '_')}`);
  }

  /** Creates a fresh folder under `tmp/` for building something that is then renamed into place. */
  makeTempDir(label = 'dir'): Promise<string> {
    return mkdtemp(join(this.tmpDir, `${process.pid}-${label.replace(/[^\w.-]/g, '_')}-`));
  }

  /**
   * Marks this process as using the store (a `tmp/<pid>-active` file) until the returned function
   * is called. `cache prune` does not run while another process holds such a mark.
   */
  async markActive(): Promise<() => Promise<void>> {
    const path = join(this.tmpDir, `${process.pid}-active`);
    await writeFile(path, `${process.pid}\n`);
    return () => rm(path, { force: true });
  }

  /** Other live processes that use the store now. */
  async activeUsers(): Promise<number[]> {
    const pids: number[] = [];
    for (const name of await readdir(this.tmpDir).catch(() => [] as string[])) {
      const m = /^(\d+)-active$/.exec(name);
      const pid = Number(m?.[1]);
      if (m && pid !== process.pid && pidAlive(pid)) pids.push(pid);
    }
    return pids;
  }

  /** Remembers a project that builds with this store, so `cache prune` can keep what it uses. */
  async registerProject(dir: string): Promise<void> {
    const folder = join(this.root, 'projects');
    await mkdir(folder, { recursive: true });
    const name = createHash('sha256').update(dir).digest('hex').slice(0, 32);
    await writeFile(join(folder, `${name}.json`), JSON.stringify({ dir }) + '\n');
  }

  /** Project folders registered with this store (some may no longer exist). */
  async projects(): Promise<Array<{ dir: string; file: string }>> {
    const folder = join(this.root, 'projects');
    const out: Array<{ dir: string; file: string }> = [];
    for (const name of await readdir(folder).catch(() => [] as string[])) {
      try {
        const data = JSON.parse(await readFile(join(folder, name), 'utf8')) as { dir?: unknown };
        if (typeof data.dir === 'string') out.push({ dir: data.dir, file: join(folder, name) });
      } catch {
        // A half-written registration: ignore it.
      }
    }
    return out;
  }

  /** Removes temps left by processes that no longer run (crash, kill, power loss). */
  async sweepTemps(): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.tmpDir).catch(() => [] as string[])) {
      const pid = Number(/^(\d+)-/.exec(name)?.[1]);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid)) {
        await rm(join(this.tmpDir, name), { recursive: true, force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Everything in the store, by kind, with sizes. */
  async list(): Promise<StoreEntry[]> {
    const entries: StoreEntry[] = [];
    const seen = new Set<string>();
    for (const kind of Object.keys(KIND_DIRS) as StoreEntryKind[]) {
      if (kind === 'block') {
        entries.push(...(await this.listBlocks()));
        continue;
      }
      const dir = join(this.root, KIND_DIRS[kind]);
      const names = (await readdir(dir).catch(() => [] as string[])).sort();
      for (const name of names) {
        const path = join(dir, name);
        try {
          const st = await lstat(path);
          const id = kind === 'blob' || kind === 'layer' ? `sha256:${name}` : name;
          if ((kind === 'blob' || kind === 'layer') && !isDigest(id)) continue;
          entries.push({ kind, id, path, bytes: await treeBytes(path, seen), mtime: st.mtime });
        } catch {
          // Removed while we looked: not there.
        }
      }
    }
    return entries;
  }

  /**
   * What a build records among its references for the blocks its squashfs export used: the writer
   * marks every entry it reads or writes as used (mtime; at most once an hour), so the entries with
   * an mtime from the start of `since`'s hour on include all of them. `cache prune` keeps those
   * (`blockUseSince`).
   */
  blockUseMark(since: number): string {
    return join(this.blocksDir, 'used-since', String(Math.floor(since)));
  }

  /** The time of a `blockUseMark`, or undefined for any other path. */
  blockUseSince(reference: string): number | undefined {
    const m = /^used-since\/(\d+)$/.exec(reference.startsWith(`${this.blocksDir}/`) ? reference.slice(this.blocksDir.length + 1) : '');
    return m ? Number(m[1]) : undefined;
  }

  /**
   * The block cache's entries (each a file; its mtime is when a write last used it) and the temps
   * its writers left (kind `tmp`, id `blocks/<part>/<name>`).
   */
  private async listBlocks(): Promise<StoreEntry[]> {
    const entries: StoreEntry[] = [];
    for (const name of (await readdir(this.blocksDir).catch(() => [] as string[])).sort()) {
      const temp = name.startsWith(`${BLOCK_MEMO}.`) && BLOCK_TEMP.test(name);
      if (name !== BLOCK_MEMO && !temp) continue;
      const path = join(this.blocksDir, name);
      try {
        const st = await lstat(path);
        if (st.isFile()) entries.push({ kind: temp ? 'tmp' : 'block', id: temp ? `blocks/${name}` : name, path, bytes: st.size, mtime: st.mtime });
      } catch {
        // Removed while we looked: not there.
      }
    }
    for (const part of BLOCK_PARTS) {
      const dir = join(this.blocksDir, part);
      for (const sub of (await readdir(dir).catch(() => [] as string[])).sort()) {
        for (const name of (await readdir(join(dir, sub)).catch(() => [] as string[])).sort()) {
          const path = join(dir, sub, name);
          const temp = BLOCK_TEMP.test(name);
          if (!temp && !/^[0-9a-f]{64}$/.test(name)) continue;
          try {
            const st = await lstat(path);
            if (!st.isFile()) continue;
            entries.push({ kind: temp ? 'tmp' : 'block', id: temp ? `blocks/${part}/${name}` : `${part}/${name}`, path, bytes: st.size, mtime: st.mtime });
          } catch {
            // Removed while we looked: not there.
          }
        }
      }
    }
    return entries;
  }

  /**
   * Removes the temps squashfs writers left in `blocks/` (killed mid-write). Only while no other
   * process uses the store: a writer's temp carries its session's pid, which says nothing here.
   */
  async sweepBlockTemps(): Promise<number> {
    let removed = 0;
    for (const e of await this.listBlocks()) {
      if (e.kind !== 'tmp') continue;
      await rm(e.path, { force: true });
      removed++;
    }
    return removed;
  }

  async usage(): Promise<StoreUsage> {
    const kinds = { blob: { count: 0, bytes: 0 }, layer: { count: 0, bytes: 0 }, snapshot: { count: 0, bytes: 0 }, block: { count: 0, bytes: 0 }, tmp: { count: 0, bytes: 0 } };
    let totalBytes = 0;
    for (const e of await this.list()) {
      kinds[e.kind].count++;
      kinds[e.kind].bytes += e.bytes;
      totalBytes += e.bytes;
    }
    return { root: this.root, kinds, totalBytes };
  }
}

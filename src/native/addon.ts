/**
 * The typed loader of orchestrator's N-API addon (native/addon/): mknod, extended attributes and
 * renameat2 and flock, which Node's fs lacks, and a tree's stat signature in one call. Loaded lazily on first
 * use, so commands that never unpack a layer work even when the addon was not built (the tree
 * signature is then skipped: trees are digested in full).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Errors thrown by the addon look like Node's fs errors. */
export interface NativeError extends Error {
  /** errno name: `'ENOENT'`, `'EEXIST'`, `'ENODATA'`, ... */
  readonly code: string;
  /** Negative errno, as libuv reports it. */
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;
  /** renameat2's second path. */
  readonly dest?: string;
}

export interface NativeAddon {
  /** mknod(2). `mode` includes the type bits (`constants.S_IFCHR | 0o644`). */
  mknod(path: string, mode: number, major: number, minor: number): void;
  /** lsetxattr(2): does not follow a final symlink. `flags`: 0, XATTR_CREATE or XATTR_REPLACE. */
  lsetxattr(path: string, name: string, value: Uint8Array, flags?: number): void;
  /** lgetxattr(2); throws code `ENODATA` when the attribute is absent. */
  lgetxattr(path: string, name: string): Buffer;
  /** llistxattr(2): the names the caller can see (`trusted.*` only as root). */
  llistxattr(path: string): string[];
  /** lremovexattr(2); throws code `ENODATA` when the attribute is absent. */
  lremovexattr(path: string, name: string): void;
  /** renameat2(2) relative to the cwd. RENAME_NOREPLACE fails with `EEXIST` instead of replacing. */
  renameat2(oldPath: string, newPath: string, flags?: number): void;
  /** syncfs(2) on the file system holding `path`: one flush instead of an fsync per file. */
  syncfs(path: string): void;
  /**
   * The stat signature of a tree (native/addon/src/tree_stat.c): a hash of every entry's path and
   * stat fields, walked on a worker thread without following symlinks, with the entry count and
   * the newest ctime, and whether any ctime is on a whole second (a file system with whole-second
   * times, or a rare coincidence). Rejects like fs.promises (code, errno, syscall, path).
   */
  treeStat(path: string): Promise<{ signature: string; entries: number; newestCtimeMs: number; coarse: boolean }>;
  /**
   * The stat signatures of many paths in one job on a worker thread, each walked as treeStat does,
   * with per-path flags (TREE_STAT_FOLLOW_ROOT: a symlink root is followed, its own fields
   * hashed too; TREE_STAT_SHALLOW: a folder's own fields only). Each result is a signature,
   * `absent`, or `error:CODE`; `newestCtimeMs` is the newest ctime of all; `coarse`, whether any
   * ctime is on a whole second (as treeStat).
   */
  witness(paths: readonly string[], flags: Uint8Array): Promise<{ signatures: string[]; newestCtimeMs: number; coarse: boolean }>;
  /**
   * Every entry of a tree (a final symlink not followed), walked on a worker thread: relative paths
   * (`.` for the root), symlink targets (null for other entries), and TREE_LIST_FIELDS numbers per
   * entry in `stats`: mode, uid, gid, size, ino, dev, rdev, mtime s, mtime ns, ctime s, ctime ns.
   */
  treeList(path: string): Promise<{ paths: string[]; links: Array<string | null>; stats: Float64Array }>;
  /**
   * flock(2) on an open file descriptor: `LOCK_SH` or `LOCK_EX`, with `LOCK_NB` not to wait, or
   * `LOCK_UN`. True when taken; false when `LOCK_NB` was given and the lock is held elsewhere.
   */
  flock(fd: number, operation: number): boolean;
  readonly constants: {
    readonly RENAME_NOREPLACE: number;
    readonly RENAME_EXCHANGE: number;
    readonly RENAME_WHITEOUT: number;
    readonly XATTR_CREATE: number;
    readonly XATTR_REPLACE: number;
    readonly S_IFCHR: number;
    readonly S_IFBLK: number;
    readonly S_IFIFO: number;
    readonly S_IFREG: number;
    readonly TREE_STAT_FOLLOW_ROOT: number;
    readonly TREE_STAT_SHALLOW: number;
    readonly TREE_LIST_FIELDS: number;
    readonly LOCK_SH: number;
    readonly LOCK_EX: number;
    readonly LOCK_NB: number;
    readonly LOCK_UN: number;
  };
}

/** Where the built addon lives, from src/native/ or dist/native/ alike. */
export const ADDON_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'native', 'addon', 'build', 'Release', 'orchestrator_native.node');

let cached: NativeAddon | undefined;

/**
 * The addon. Throws (a bug-class failure: the install is broken) with a message that says how to
 * build it when it is missing or cannot be loaded.
 */
export function nativeAddon(): NativeAddon {
  if (cached) return cached;
  if (!existsSync(ADDON_PATH)) {
    throw new Error(
      `orchestrator's native addon is not built (missing ${ADDON_PATH}). ` +
        'Run `npm run build` in the orchestrator package; it needs a C compiler and make (Debian: apt-get install build-essential) and the Node headers (/usr/include/node, Debian package libnode-dev or nodejs).',
    );
  }
  try {
    cached = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  } catch (e) {
    throw new Error(`orchestrator's native addon at ${ADDON_PATH} failed to load (${e instanceof Error ? e.message : String(e)}); rebuild it with \`npm run build\`.`, { cause: e });
  }
  return cached;
}

/** True when `e` is an error with the given errno name (from the addon or from node:fs). */
export function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

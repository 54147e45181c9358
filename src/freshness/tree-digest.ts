import { createHash } from 'node:crypto';
import { constants as fsConstants, createReadStream, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expandHostPattern } from '../core/expand-host-pattern.js';
import { sha256Digest, type Digest } from '../core/digest.js';
import { fileSystemNow, settledBefore } from '../core/file-system-now.js';
import { nativeAddon } from '../native/addon.js';
import { StatIndex } from './stat-index.js';
import type { ReadSet } from './read-set.js';
import { isGlob } from '../core/is-glob.js';
import type { InputFilter } from './input-filter.js';

/** How identities are computed: through a stat index, abortable, and reporting what they read. */
export interface IdentityOptions {
  readonly index?: StatIndex;
  readonly signal?: AbortSignal;
  /** Every path read is added here (the no-op witness of `up`). */
  readonly reads?: ReadSet;
  /**
   * What is left out of folders and glob matches (the state and cache folders, outputs,
   * `.orchestratorignore`): inputIdentity's; never given for images (sources, outputs).
   */
  readonly filter?: InputFilter;
}

/** One entry of a tree listing: what a change to it would change. */
export interface TreeEntryDigest {
  readonly path: string;
  /** `f 100644 0:0 <sha256>`, `d 40755 0:0`, `l 120777 0:0 -> target`, `c 20644 0:0 1:3`. */
  readonly summary: string;
}

export interface TreeDigest {
  readonly digest: Digest;
  /** Entries in sorted path order (relative, `/`-separated); the root itself is `.`. */
  readonly entries: readonly TreeEntryDigest[];
}

async function hashFile(path: string, size: number, signal?: AbortSignal): Promise<string> {
  signal?.throwIfAborted();
  const h = createHash('sha256');
  // A small file in one read: a stream costs more to set up than the read itself.
  if (size <= SMALL_FILE) return h.update(readFileSync(path)).digest('hex');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer);
    signal?.throwIfAborted();
  }
  return h.digest('hex');
}

const SMALL_FILE = 1 << 20;

/** Errors of a file that was listed and then removed, or replaced by a folder or a link loop. */
const GONE_DURING_WALK = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP']);

/**
 * sha256 of a file's content (a symlink is followed, as reading it does), through the stat index
 * when given.
 */
export async function fileSha256(path: string, options: IdentityOptions = {}): Promise<string> {
  options.reads?.add(path);
  return statedFileSha256(path, Date.now(), statSync(path), options);
}

/** fileSha256 for a file whose stat was taken at `seenAtMs` (before any of its content was read). */
async function statedFileSha256(path: string, seenAtMs: number, st: Stats, options: IdentityOptions): Promise<string> {
  const key = StatIndex.statKey(st);
  const known = options.index?.lookup(path, key);
  if (known !== undefined) return known;
  const sha = await hashFile(path, st.size, options.signal);
  options.index?.remember(path, key, sha, { ctimeMs: st.ctimeMs, seenAtMs });
  return sha;
}

/** The stat fields a tree digest uses, from a native listing or from lstat. */
export interface EntryStat {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly ino: number;
  readonly dev: number;
  readonly rdev: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
}

export interface ListedEntry {
  readonly rel: string;
  readonly st: EntryStat;
  /** A symlink's target. */
  readonly link?: string;
}

const { S_IFMT, S_IFREG, S_IFLNK, S_IFDIR, S_IFCHR, S_IFBLK, S_IFIFO } = fsConstants;

/**
 * Every entry of a tree, root first. Natively (one walk on a worker thread, ~3 µs an entry) when
 * the addon is there and the walk succeeds; otherwise by lstat calls, which also give Node's own
 * error for an unreadable tree.
 */
export async function listTree(root: string): Promise<ListedEntry[]> {
  let native: Awaited<ReturnType<ReturnType<typeof nativeAddon>['treeList']>> | undefined;
  try {
    native = await nativeAddon().treeList(root);
  } catch {
    native = undefined;
  }
  if (native) {
    const { paths, links, stats } = native;
    const out: ListedEntry[] = new Array<ListedEntry>(paths.length);
    for (let i = 0; i < paths.length; i++) {
      const o = i * TREE_LIST_FIELDS;
      // As Node computes mtimeMs and ctimeMs, so that stat index keys agree with lstat's.
      const st: EntryStat = {
        mode: stats[o]!,
        uid: stats[o + 1]!,
        gid: stats[o + 2]!,
        size: stats[o + 3]!,
        ino: stats[o + 4]!,
        dev: stats[o + 5]!,
        rdev: stats[o + 6]!,
        mtimeMs: stats[o + 7]! * 1000 + stats[o + 8]! / 1e6,
        ctimeMs: stats[o + 9]! * 1000 + stats[o + 10]! / 1e6,
      };
      const link = links[i];
      out[i] = link === null || link === undefined ? { rel: paths[i]!, st } : { rel: paths[i]!, st, link };
    }
    return out;
  }
  return listTreeByLstat(root);
}

/** listTree by lstat calls (exported for the test that compares it with the native walk). */
export function listTreeByLstat(root: string): ListedEntry[] {
  const out: ListedEntry[] = [];
  const visit = (rel: string): void => {
    const abs = rel === '.' ? root : join(root, rel);
    const st = lstatSync(abs);
    if (st.isSymbolicLink()) out.push({ rel, st, link: readlinkSync(abs) });
    else out.push({ rel, st });
    if (st.isDirectory()) for (const name of readdirSync(abs)) visit(rel === '.' ? name : `${rel}/${name}`);
  };
  visit('.');
  return out;
}

/** Native listings carry this many numbers per entry (native/addon/src/tree_stat.h). */
const TREE_LIST_FIELDS = 11;

/**
 * A content digest of a file or a folder tree: types, modes, owners, content, link targets and
 * device numbers of every entry, in sorted order. Times are not part of it (a `touch` is not a
 * change). Hashing goes through the stat index, so an unchanged tree costs only its listing; only
 * the files whose content must be read are hashed, a few at a time.
 */
export async function treeDigest(root: string, options: IdentityOptions = {}): Promise<TreeDigest> {
  const entries: Array<{ path: string; summary: string }> = [];
  const toHash: Array<{ entry: { path: string; summary: string }; abs: string; head: string; key: string; ctimeMs: number; size: number }> = [];
  const seenAtMs = Date.now();
  options.signal?.throwIfAborted();
  const filter = options.filter?.mayIgnoreBelow(root) ? options.filter : undefined;
  for (const { rel, st, link } of await listTree(root)) {
    const abs = rel === '.' ? root : join(root, rel);
    if (filter && rel !== '.' && filter.ignores(abs)) continue;
    const type = st.mode & S_IFMT;
    const head = `${type.toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (type === S_IFREG) {
      const key = StatIndex.statKey(st);
      const known = options.index?.lookup(abs, key);
      const entry = { path: rel, summary: known !== undefined ? `f ${head} ${known}` : '' };
      if (known === undefined) toHash.push({ entry, abs, head, key, ctimeMs: st.ctimeMs, size: st.size });
      entries.push(entry);
    } else if (type === S_IFLNK) {
      entries.push({ path: rel, summary: `l ${head} -> ${link ?? ''}` });
    } else if (type === S_IFDIR) {
      entries.push({ path: rel, summary: `d ${head}` });
    } else {
      const kind = type === S_IFCHR ? 'c' : type === S_IFBLK ? 'b' : type === S_IFIFO ? 'p' : 's';
      entries.push({ path: rel, summary: `${kind} ${head} ${st.rdev}` });
    }
  }
  const batch = 8;
  for (let i = 0; i < toHash.length; i += batch) {
    await Promise.all(
      toHash.slice(i, i + batch).map(async (f) => {
        const sha = await hashFile(f.abs, f.size, options.signal).catch((e: unknown) => {
          if (!GONE_DURING_WALK.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
          return undefined;
        });
        // Removed or replaced since it was listed: the tree is changing under the walk. Its digest
        // then matches no recorded one (stale, never falsely fresh), and nothing is remembered.
        if (sha === undefined) {
          f.entry.summary = `f ${f.head} changed-during-walk`;
          return;
        }
        options.index?.remember(f.abs, f.key, sha, { ctimeMs: f.ctimeMs, seenAtMs });
        f.entry.summary = `f ${f.head} ${sha}`;
      }),
    );
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  // The rules are part of what a filtered folder is: a changed ignore file is a changed input.
  const salt = filter ? `\0filter\0${filter.id}\n` : '';
  return { digest: sha256Digest(entries.map((e) => `${e.path}\0${e.summary}\n`).join('') + salt), entries };
}

/** Paths that differ between two listings: added, removed or changed. */
export function diffTrees(before: readonly TreeEntryDigest[], after: readonly TreeEntryDigest[]): Array<{ path: string; change: 'added' | 'removed' | 'changed' }> {
  const a = new Map(before.map((e) => [e.path, e.summary]));
  const b = new Map(after.map((e) => [e.path, e.summary]));
  const out: Array<{ path: string; change: 'added' | 'removed' | 'changed' }> = [];
  for (const [p, s] of b) {
    const old = a.get(p);
    if (old === undefined) out.push({ path: p, change: 'added' });
    else if (old !== s) out.push({ path: p, change: 'changed' });
  }
  for (const p of a.keys()) if (!b.has(p)) out.push({ path: p, change: 'removed' });
  return out.sort((x, y) => (x.path < y.path ? -1 : 1));
}

/** The native stat signature of a tree, or undefined when it cannot be had (no addon, an error). */
async function statSignature(root: string): Promise<{ signature: string; newestCtimeMs: number; coarse: boolean } | undefined> {
  try {
    return await nativeAddon().treeStat(root);
  } catch {
    return undefined;
  }
}

/**
 * A folder's tree digest through the stat index: when the tree's stat signature (every entry's
 * stat fields, one native walk) is the one recorded with a digest, that digest is the answer and
 * nothing is read or listed; otherwise the tree is digested (`entries` is then given) and the
 * pair remembered. This is what makes a no-op `up` over many sandboxes cheap.
 */
export async function treeIdentity(root: string, options: IdentityOptions = {}): Promise<{ digest: Digest; entries?: readonly TreeEntryDigest[] }> {
  const seenAtMs = Date.now();
  const sig = options.index ? await statSignature(root) : undefined;
  // Taken before the tree is read: the witness keeps it (or, without one, signs the path later).
  if (sig) options.reads?.addSigned(root, sig);
  else options.reads?.add(root);
  // A filtered digest is remembered apart from the whole tree's.
  const indexKey = options.filter?.mayIgnoreBelow(root) ? `${root}\0${options.filter.id}` : root;
  const known = sig && options.index?.lookupTree(indexKey, sig.signature);
  if (known) return { digest: known };
  const tree = await treeDigest(root, options);
  if (sig) options.index?.rememberTree(indexKey, sig.signature, tree.digest, { newestCtimeMs: sig.newestCtimeMs, coarse: sig.coarse, seenAtMs });
  return tree;
}

/**
 * The digest and listing of a tree this process has just written (a sandbox output), with its
 * stat signature remembered in the index so that the next run need not list it again. The
 * signature is trusted only if every ctime in the tree is older than the file system's "now"
 * taken before it (fileSystemNow in `clockDir`), so this waits out the clock tick of the last
 * write (a few ms) first. The signature is taken before the listing: a change in between makes
 * the next run list the tree again, never trust a stale digest.
 */
export async function writtenTreeDigest(root: string, options: IdentityOptions & { readonly clockDir: string }): Promise<TreeDigest> {
  let sig: Awaited<ReturnType<typeof statSignature>>;
  let now: number | undefined;
  for (let attempt = 0; attempt < 25; attempt++) {
    now = fileSystemNow(options.clockDir);
    sig = options.index ? await statSignature(root) : undefined;
    if (now === undefined || sig === undefined || settledBefore(now, sig.newestCtimeMs, sig.coarse)) break;
    await sleep(2);
  }
  const tree = await treeDigest(root, options);
  if (sig && now !== undefined) options.index?.rememberTree(root, sig.signature, tree.digest, { newestCtimeMs: sig.newestCtimeMs, coarse: sig.coarse, fsNowMs: now });
  return tree;
}

/**
 * The identity of a file or folder as it is now: a tree digest for a folder, a content digest
 * for a file, `missing` when there is nothing there.
 */
export async function pathIdentity(path: string, options: IdentityOptions = {}): Promise<string> {
  options.reads?.add(path);
  try {
    const seenAtMs = Date.now();
    const st = statSync(path);
    // A symlink to a folder stands for the folder: digest what it points at.
    if (st.isDirectory()) return (await treeIdentity(lstatSync(path).isSymbolicLink() ? realpathSync.native(path) : path, options)).digest;
    return `sha256:${await statedFileSha256(path, seenAtMs, st, options)}`;
  } catch {
    return 'missing';
  }
}


/**
 * The identity of a path as written in a recipe or manifest, relative to `baseDir`: a glob is
 * what it matches now, with each match's identity (a new match is a change); a path is its
 * pathIdentity.
 */
export async function inputIdentity(baseDir: string, text: string, options: IdentityOptions = {}): Promise<string> {
  if (!isGlob(text)) return pathIdentity(isAbsolute(text) ? text : join(baseDir, text), options);
  options.reads?.addGlob(baseDir, text);
  const paths = (await expandHostPattern(baseDir, text, options.signal)).filter((p) => !options.filter?.ignores(p)).sort();
  const parts: string[] = [];
  for (const p of paths) parts.push(`${p}=${await pathIdentity(p, options)}`);
  return `glob:${sha256Digest(parts.join('\n'))}`;
}

import { chmod, copyFile, lchown, lstat, lutimes, mkdir, readdir, readlink, rm, symlink, utimes, constants as fsConstants } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { nativeAddon } from '../native/addon.js';
import { copyXattrs } from './copy-up.js';
import { isOpaque, isWhiteout, LayerStack } from './layer-stack.js';

/**
 * Updating a sandbox output in place (docs/ARCHITECTURE.md, Steps): when the sandbox is exactly what the last
 * build wrote and the new image shares the bottom of its overlay stack with the old one, only the
 * paths that the differing top layers touch can differ. Those are applied — copied from the new
 * merged view, or removed — and nothing else is copied. A `%runscript` edit of a dev sandbox then
 * takes milliseconds instead of a copy of the whole tree.
 */
export interface SandboxDeltaResult {
  /** Paths written or removed. */
  readonly changed: number;
}

/** Every path in an overlay-format layer folder; whiteouts and opaque folders noted. */
async function walkLayer(root: string): Promise<{ paths: string[]; resync: string[] }> {
  const paths: string[] = [];
  const resync: string[] = [];
  const visit = async (rel: string): Promise<void> => {
    for (const name of await readdir(rel === '' ? root : join(root, rel))) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(join(root, child));
      paths.push(child);
      if (isWhiteout(st)) resync.push(child);
      else if (st.isDirectory()) {
        if (isOpaque(join(root, child))) resync.push(child);
        await visit(child);
      }
    }
  };
  await visit('');
  return { paths, resync };
}


/** Copies one entry (not a folder's contents) with owner, mode, times and xattrs. */
async function copyEntry(from: string, to: string, st: Stats): Promise<void> {
  if (st.isDirectory()) {
    await mkdir(to);
  } else if (st.isFile()) {
    await copyFile(from, to, fsConstants.COPYFILE_FICLONE);
  } else if (st.isSymbolicLink()) {
    await symlink(await readlink(from), to);
  } else {
    const type = st.isCharacterDevice() ? constants.S_IFCHR : st.isBlockDevice() ? constants.S_IFBLK : constants.S_IFIFO;
    nativeAddon().mknod(to, type | (st.mode & 0o7777), Math.floor(st.rdev / 256), st.rdev % 256);
  }
  await lchown(to, st.uid, st.gid);
  if (!st.isSymbolicLink()) await chmod(to, st.mode & 0o7777);
  copyXattrs(from, to);
  if (st.isSymbolicLink()) await lutimes(to, st.atime, st.mtime);
  else await utimes(to, st.atime, st.mtime);
}

/**
 * Applies to `sandbox` the difference between the image made of `oldLowers` (what the sandbox
 * holds now) and the one made of `newLowers` (both top first). Returns undefined when the two
 * share no bottom layers (nothing to gain: copy the whole image instead). Over 80 lines on
 * purpose: one pass over the changed paths, whose order (removals, then copies top-down) is the
 * point and is easiest to check in one place.
 */
export async function applySandboxDelta(options: {
  readonly sandbox: string;
  readonly oldLowers: readonly string[];
  readonly newLowers: readonly string[];
  readonly signal?: AbortSignal;
}): Promise<SandboxDeltaResult | undefined> {
  const { oldLowers, newLowers, sandbox } = options;
  let common = 0;
  while (common < oldLowers.length && common < newLowers.length && oldLowers[oldLowers.length - 1 - common] === newLowers[newLowers.length - 1 - common]) common++;
  if (common === 0) return undefined;
  const differing = [...oldLowers.slice(0, oldLowers.length - common), ...newLowers.slice(0, newLowers.length - common)];
  const touched = new Set<string>();
  const resync = new Set<string>();
  for (const layer of differing) {
    const w = await walkLayer(layer);
    for (const p of w.paths) touched.add(p);
    for (const p of w.resync) resync.add(p);
  }
  const stack = new LayerStack(newLowers);
  let changed = 0;
  const under = (p: string, roots: Iterable<string>): boolean => {
    for (const r of roots) if (p === r || p.startsWith(`${r}/`)) return true;
    return false;
  };

  /** Makes sandbox/rel and everything below it what the new merged view has. */
  const copyTree = async (rel: string): Promise<void> => {
    options.signal?.throwIfAborted();
    const e = await stack.entry(rel);
    if (!e) return;
    const to = join(sandbox, rel);
    await copyEntry(join(stack.layers[e.layer]!, rel), to, e.stats);
    changed++;
    if (e.stats.isDirectory()) {
      for (const name of await stack.list(rel)) await copyTree(`${rel}/${name}`);
      await utimes(to, e.stats.atime, e.stats.mtime);
    }
  };

  // Folders whose lower contents appear or disappear (opaque, whited out): replace whole.
  const roots = [...resync].sort((a, b) => a.length - b.length).filter((p, i, all) => !all.slice(0, i).some((r) => under(p, [r])));
  const dirsToStamp: string[] = [];
  for (const rel of [...touched].sort((a, b) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1))) {
    if (under(rel, roots)) continue;
    options.signal?.throwIfAborted();
    const to = join(sandbox, rel);
    const e = await stack.entry(rel);
    const current = await lstat(to).catch(() => null);
    if (!e) {
      if (current) {
        await rm(to, { recursive: true, force: true });
        changed++;
      }
      continue;
    }
    if (e.stats.isDirectory() && current?.isDirectory()) {
      // Same folder: its own metadata; its changed children are in `touched` themselves.
      const from = join(stack.layers[e.layer]!, rel);
      await lchown(to, e.stats.uid, e.stats.gid);
      await chmod(to, e.stats.mode & 0o7777);
      copyXattrs(from, to);
      dirsToStamp.push(rel);
      continue;
    }
    if (current) await rm(to, { recursive: true, force: true });
    await copyTree(rel);
  }
  for (const rel of roots) {
    await rm(join(sandbox, rel), { recursive: true, force: true });
    changed++;
    await copyTree(rel);
  }
  // Folder times last: writing into a folder changes its mtime.
  for (const rel of dirsToStamp.reverse()) {
    const e = await stack.entry(rel);
    if (e) await utimes(join(sandbox, rel), e.stats.atime, e.stats.mtime);
  }
  return { changed };
}

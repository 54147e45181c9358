import { lstat, readdir, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { isErrno, nativeAddon } from '../native/addon.js';
import { overlayXattrPrefix } from '../core/id-map.js';

/**
 * Read-only lookups in a stack of overlay-format folders (top first), resolving paths the way the
 * kernel's overlayfs would present them: the topmost entry wins, a 0/0 character device is a
 * whiteout (deleted), and a folder with `trusted.overlay.opaque=y` hides the folders below it.
 * Used to place `%files` and metadata in a step's upper folder without mounting anything.
 */
export interface StackEntry {
  /** Index in the stack (0 = top) where the entry was found. */
  readonly layer: number;
  readonly stats: Stats;
}

const MAX_LINKS = 40;

/** An overlayfs whiteout: a 0/0 character device. */
export function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** A folder marked `trusted.overlay.opaque=y` (`user.overlay.` in a user namespace): the layers below it do not show through. */
export function isOpaque(path: string): boolean {
  try {
    return nativeAddon().lgetxattr(path, `${overlayXattrPrefix()}opaque`).toString() === 'y';
  } catch (e) {
    if (isErrno(e, 'ENODATA') || isErrno(e, 'ENOENT') || isErrno(e, 'ENOTSUP')) return false;
    throw e;
  }
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (e) {
    if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) return null;
    throw e;
  }
}

export class LayerStack {
  constructor(readonly layers: readonly string[]) {}

  /**
   * The entry at a resolved relative path (no symlinks followed), or null when absent. `parentFloor`
   * is the deepest layer the parent folder reaches (opaque folders cut the stack).
   */
  async entry(rel: string): Promise<StackEntry | null> {
    return (await this.#lookup(rel))?.entry ?? null;
  }

  /**
   * The names in folder `rel` as overlayfs shows them: the union of the folder in every layer it
   * reaches down to (an opaque folder or a whiteout cuts it), minus whiteouts. Empty when `rel` is
   * not a folder.
   */
  async list(rel: string): Promise<string[]> {
    const found = await this.#lookup(rel);
    if (!found || !found.entry.stats.isDirectory()) return [];
    const sub = rel.split('/').filter((p) => p !== '' && p !== '.').join('/');
    const decided = new Map<string, boolean>();
    for (let i = found.entry.layer; i < found.floor; i++) {
      const dir = sub === '' ? this.layers[i]! : join(this.layers[i]!, sub);
      const st = await lstatOrNull(dir);
      if (!st || !st.isDirectory()) continue;
      for (const name of await readdir(dir)) {
        if (decided.has(name)) continue;
        const child = await lstatOrNull(join(dir, name));
        decided.set(name, child !== null && !isWhiteout(child));
      }
    }
    return [...decided].filter(([, visible]) => visible).map(([n]) => n).sort();
  }

  /** The entry at `rel` and how deep in the stack its folder's contents reach. */
  async #lookup(rel: string): Promise<{ entry: StackEntry; floor: number } | null> {
    const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.length === 0) {
      for (let i = 0; i < this.layers.length; i++) {
        const st = await lstatOrNull(this.layers[i]!);
        if (st) return { entry: { layer: i, stats: st }, floor: this.layers.length };
      }
      return null;
    }
    // Walk down: at each level the visible layers may be cut by an opaque folder.
    let floor = this.layers.length;
    let found: StackEntry | null = null;
    for (let depth = 0; depth < parts.length; depth++) {
      const sub = parts.slice(0, depth + 1).join('/');
      found = null;
      let newFloor = floor;
      for (let i = 0; i < floor; i++) {
        const p = join(this.layers[i]!, sub);
        const st = await lstatOrNull(p);
        if (!st) continue;
        if (isWhiteout(st)) {
          // Deleted here: hidden if nothing above has it, and nothing below shows through.
          newFloor = i;
          break;
        }
        if (!found) found = { layer: i, stats: st };
        else if (!st.isDirectory()) {
          // A non-folder below a folder: it and what is below do not merge in.
          newFloor = i;
          break;
        }
        if (!st.isDirectory() || isOpaque(p)) {
          newFloor = i + 1;
          break;
        }
      }
      if (!found) return null;
      if (depth < parts.length - 1 && !found.stats.isDirectory()) return null;
      floor = newFloor;
    }
    return found ? { entry: found, floor } : null;
  }

  /**
   * Resolves `path` (absolute inside the image) following symlinks inside the image, never
   * outside it: `..` stops at the root and absolute link targets start again at the image root.
   * The last component is followed too unless `followLast` is false. Returns the resolved relative
   * path (which may not exist) or null when a link loop or a non-folder parent stops it.
   */
  async resolve(path: string, followLast = true): Promise<string | null> {
    let pending = path.split('/').filter((p) => p !== '' && p !== '.');
    const done: string[] = [];
    let links = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '..') {
        done.pop();
        continue;
      }
      const rel = [...done, part].join('/');
      const e = await this.entry(rel);
      if (e && e.stats.isSymbolicLink() && (pending.length > 0 || followLast)) {
        if (++links > MAX_LINKS) return null;
        const target = await readlink(join(this.layers[e.layer]!, rel));
        const targetParts = target.split('/').filter((p) => p !== '' && p !== '.');
        if (target.startsWith('/')) done.length = 0;
        pending = [...targetParts, ...pending];
        continue;
      }
      if (e && !e.stats.isDirectory() && pending.length > 0) return null;
      done.push(part);
    }
    return done.join('/');
  }
}

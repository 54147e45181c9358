import { chmod, chown, lstat, mkdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrno, nativeAddon } from '../native/addon.js';
import type { LayerStack } from './layer-stack.js';
import { isOverlayXattr } from '../core/id-map.js';

/** The mode, owner and group of a folder `%files` (or a metadata step) creates where the image has none: Apptainer's `mkdir -p`, as root. */
export const NEW_DIR_MODE = 0o755;

/**
 * Copies the extended attributes of `from` onto `to`, as overlayfs' copy-up does: every one but
 * overlayfs' own (`trusted.overlay.*`, which say how the lower layer is stacked, not what the
 * file is).
 */
export function copyXattrs(from: string, to: string, options: { readonly skipRefused?: boolean } = {}): void {
  const addon = nativeAddon();
  let names: string[];
  try {
    names = addon.llistxattr(from);
  } catch (e) {
    if (isErrno(e, 'ENOTSUP')) return;
    throw e;
  }
  for (const name of names) {
    if (isOverlayXattr(name)) continue;
    try {
      addon.lsetxattr(to, name, addon.lgetxattr(from, name));
    } catch (e) {
      // skipRefused: one this namespace may not write (trusted.*, some security.*) is left out.
      const refused = ['EPERM', 'EACCES', 'EINVAL', 'ENOTSUP'].some((code) => isErrno(e, code));
      if (!options.skipRefused || !refused) throw e;
    }
  }
}

/**
 * Makes the folders of `rel` (relative to the image root) in an upper folder the way overlayfs
 * copies them up: exactly as they are in the image — mode with its setuid, setgid and sticky bits,
 * owner, extended attributes and times — whatever the process's umask. A folder the image lacks is
 * made as Apptainer's `%files` makes missing parents (`mkdir -p`): root's, 0755.
 */
export async function copyUpDirs(stack: LayerStack, upper: string, rel: string): Promise<void> {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  let cur = '';
  for (const part of parts) {
    const parent = cur === '' ? upper : join(upper, cur);
    cur = cur === '' ? part : `${cur}/${part}`;
    const e = await stack.entry(cur);
    const path = join(upper, cur);
    // Copy-up is no change the container made: the parent keeps its times (overlayfs does the same).
    const parentTimes = await lstat(parent);
    try {
      await mkdir(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      continue;
    }
    if (e?.stats.isDirectory() === true) {
      const st = e.stats;
      // Owner first: chown may clear set-id bits, which the chmod then puts back.
      await chown(path, st.uid, st.gid);
      await chmod(path, st.mode & 0o7777);
      copyXattrs(join(stack.layers[e.layer]!, cur), path);
      await utimes(path, st.atime, st.mtime);
    } else {
      await chown(path, 0, 0);
      await chmod(path, NEW_DIR_MODE);
    }
    await utimes(parent, parentTimes.atime, parentTimes.mtime);
  }
}

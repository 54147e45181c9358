import { chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayerStack } from './layer-stack.js';

/**
 * Makes the folders of `rel` (relative to the image root) in an upper folder the way overlayfs
 * copies them up: the mode and owner they have in the image; new folders are root's, 0755.
 */
export async function copyUpDirs(stack: LayerStack, upper: string, rel: string): Promise<void> {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  let cur = '';
  for (const part of parts) {
    cur = cur === '' ? part : `${cur}/${part}`;
    const e = await stack.entry(cur);
    const isDir = e?.stats.isDirectory() === true;
    const path = join(upper, cur);
    try {
      await mkdir(path, { mode: isDir ? e!.stats.mode & 0o7777 : 0o755 });
      if (isDir) await chown(path, e!.stats.uid, e!.stats.gid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

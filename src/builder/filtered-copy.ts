import { chmod, copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import type { InputFilter } from '../freshness/input-filter.js';

/**
 * `cp -fLr SRC DEST` for a host folder some of whose entries the input filter leaves out (the
 * project's state and cache folders, outputs, `.orchestratorignore`): links followed, files and
 * folders made with the source's permission bits less the umask, as cp makes them; an existing
 * folder at DEST is merged into, an existing file replaced. A folder reached twice through links
 * on the same path is not followed again (cp would refuse the loop).
 */
export async function copyFiltered(src: string, dest: string, filter: InputFilter): Promise<Diagnostic | undefined> {
  const umask = process.umask();
  const onPath = new Set<string>();
  const copy = async (from: string, to: string): Promise<void> => {
    const st = await stat(from);
    const mode = st.mode & 0o777 & ~umask;
    if (st.isDirectory()) {
      const id = `${st.dev}:${st.ino}`;
      if (onPath.has(id)) return;
      onPath.add(id);
      const existing = await stat(to).catch(() => undefined);
      if (!existing?.isDirectory()) {
        if (existing) await rm(to, { force: true });
        await mkdir(to);
        await chmod(to, mode);
      }
      for (const name of (await readdir(from)).sort()) {
        const child = join(from, name);
        if (filter.ignoresAlways(child) || (filter.ignores(child) && !filter.hasNegation)) continue;
        await copy(child, join(to, name));
      }
      onPath.delete(id);
      return;
    }
    // A re-included entry below an ignored folder: the folder comes along (as `mkdir -p`).
    if (filter.ignores(from)) return;
    await rm(to, { recursive: true, force: true });
    await copyFile(from, to);
    await chmod(to, mode);
  };
  try {
    await copy(src, dest);
    if (filter.hasNegation) await pruneIgnoredDirs(src, dest, filter);
    return undefined;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return error('files-copy-failed', `copying %files failed: ${err.code ?? 'error'}: ${err.message}`, { hint: 'check that the source can be read and that no link in it is dangling' });
  }
}

/**
 * With `!` lines, ignored folders were walked to find what they re-include; those left holding
 * nothing are removed again. Returns whether `dest` is gone.
 */
async function pruneIgnoredDirs(src: string, dest: string, filter: InputFilter): Promise<boolean> {
  const st = await stat(dest).catch(() => undefined);
  if (!st?.isDirectory()) return st === undefined;
  let empty = true;
  for (const name of await readdir(dest)) if (!(await pruneIgnoredDirs(join(src, name), join(dest, name), filter))) empty = false;
  if (!empty || !filter.ignores(src)) return false;
  await rm(dest, { recursive: true, force: true });
  return true;
}

import { chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { unreachable } from '../core/unreachable.js';

/** A file system entry to create inside an image root, relative to it (no leading `/`). */
export type TreeEntry =
  | { readonly type: 'dir'; readonly path: string; readonly mode: number }
  | { readonly type: 'file'; readonly path: string; readonly mode: number; readonly content: string }
  | { readonly type: 'symlink'; readonly path: string; readonly target: string };

/**
 * Makes `e` at `path` (its parent must exist), replacing a file or link there: modes set by chmod,
 * so that the umask never narrows them.
 */
export async function writeTreeEntry(path: string, e: TreeEntry): Promise<void> {
  switch (e.type) {
    case 'dir':
      await mkdir(path, { recursive: true });
      await chmod(path, e.mode);
      break;
    case 'file':
      await rm(path, { recursive: true, force: true });
      await writeFile(path, e.content, { mode: e.mode });
      await chmod(path, e.mode);
      break;
    case 'symlink':
      await rm(path, { recursive: true, force: true });
      await symlink(e.target, path);
      break;
    default:
      unreachable(e);
  }
}

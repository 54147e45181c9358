import { chmod, lstat, mkdir, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { DiagnosticError } from '../core/diagnostic-error.js';
import { error } from '../core/diagnostic.js';
import { expandHome, userHome } from '../core/expand-home.js';

export interface CacheRootOptions {
  /** An explicit folder (`--cache-dir`, the manifest's `cache.dir`); `~/` is expanded. */
  readonly dir?: string | undefined;
  /** Resolves a relative `dir` (the project folder); default the process's working folder. */
  readonly base?: string | undefined;
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** The caller's uid outside the build namespace, naming its area in a shared cache (ownStoreRoot). */
  readonly hostUid?: number | undefined;
}

/**
 * The cache folder (docs/ARCHITECTURE.md, Store): the explicit option, else `$ORCHESTRATOR_CACHE`, else
 * `$XDG_CACHE_HOME/orchestrator`, else `~/.cache/orchestrator`. Always absolute.
 */
export function resolveCacheRoot(options: CacheRootOptions = {}): string {
  const env = options.env ?? process.env;
  const base = options.base ?? process.cwd();
  const pick = (p: string): string => {
    const e = expandHome(p, userHome(env));
    return isAbsolute(e) ? e : resolve(base, e);
  };
  if (options.dir !== undefined && options.dir !== '') return pick(options.dir);
  const fromEnv = env['ORCHESTRATOR_CACHE'];
  if (fromEnv !== undefined && fromEnv !== '') return pick(fromEnv);
  const xdg = env['XDG_CACHE_HOME'];
  if (xdg !== undefined && xdg !== '' && isAbsolute(xdg)) return join(xdg, 'orchestrator');
  return join(userHome(env), '.cache', 'orchestrator');
}

/**
 * The folder this user's store lives in, under the cache folder `root` (docs/ARCHITECTURE.md,
 * Store, Shared cache folders): `root` itself when this user owns it (the usual
 * `~/.cache/orchestrator`); else, in a folder shared by several users, `root/users/<uid>/`, made
 * by this user with mode 0700 under a sticky, world-writable `users/`. Nothing of another user's
 * is ever read: a step snapshot, layer or blob written by someone else cannot reach this user's
 * builds. `hostUid` names the area (inside the build namespace it is the caller's uid outside);
 * ownership is checked against this process's uid (0 there, which is the caller outside).
 * Throws a DiagnosticError (`cache-not-safe`) when the area is not this user's alone.
 */
export async function ownStoreRoot(root: string, hostUid: number): Promise<string> {
  const me = process.getuid?.() ?? 0;
  await mkdir(root, { recursive: true });
  const top = await stat(root);
  if (top.uid === me) return root;
  const users = join(root, 'users');
  try {
    await mkdir(users, { mode: 0o1777 });
    await chmod(users, 0o1777); // the umask took the sticky and write bits
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const mine = join(users, String(hostUid));
  try {
    await mkdir(mine, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const st = await lstat(mine);
  const shared = await lstat(users);
  const stickyOk = shared.isDirectory() && (shared.uid === me || shared.uid === top.uid || (shared.mode & 0o1000) !== 0);
  if (!st.isDirectory() || st.uid !== me || (st.mode & 0o022) !== 0 || !stickyOk) {
    throw new DiagnosticError(
      error('cache-not-safe', `the cache folder ${root} belongs to another user, and this user's area in it (${mine}) is not this user's alone`, {
        hint: `remove ${mine} (as its owner or root) so that it is made again, or give --cache-dir a folder of your own`,
      }),
    );
  }
  return mine;
}

import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * The user's home: `$HOME` when set (as the shell expands `~`), else the password database's.
 * Every `~` of orchestrator is expanded with this one home (the manifest's `cache.dir` and
 * `outputs.outside`, `$ORCHESTRATOR_CACHE`, the default cache folder).
 */
export function userHome(env: NodeJS.ProcessEnv = process.env): string {
  const home = env['HOME'];
  return home !== undefined && home !== '' ? home : homedir();
}

/** `~` and `~/x` as the shell expands them (with `home`); any other path as it is (`~user/` too). */
export function expandHome(path: string, home: string): string {
  if (path === '~') return home;
  if (path.startsWith('~/')) return join(home, path.slice(2));
  return path;
}

import { isAbsolute, join, resolve } from 'node:path';
import { expandHome, userHome } from '../core/expand-home.js';

export interface CacheRootOptions {
  /** An explicit folder (`--cache-dir`, the manifest's `cache.dir`); `~/` is expanded. */
  readonly dir?: string | undefined;
  /** Resolves a relative `dir` (the project folder); default the process's working folder. */
  readonly base?: string | undefined;
  readonly env?: NodeJS.ProcessEnv | undefined;
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

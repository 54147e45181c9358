import { join } from 'node:path';

/**
 * The user's cache folder (docs/ARCHITECTURE.md, Store): $ORCHESTRATOR_CACHE, else $XDG_CACHE_HOME/orchestrator,
 * else ~/.cache/orchestrator. (The store may own this later; the runtime only needs a folder.)
 */
export function defaultCacheDir(env: Readonly<Record<string, string | undefined>>): string {
  if (env['ORCHESTRATOR_CACHE']) return env['ORCHESTRATOR_CACHE'];
  if (env['XDG_CACHE_HOME']) return join(env['XDG_CACHE_HOME'], 'orchestrator');
  return join(env['HOME'] ?? '/tmp', '.cache', 'orchestrator');
}

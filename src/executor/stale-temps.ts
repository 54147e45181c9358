import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pidAlive } from '../core/pid-alive.js';

/**
 * Removes the temp siblings of `output` (`.NAME.tmp-PID-HEX`, see tempSibling) left by processes
 * that no longer run: a build killed during its export (kill -9, power loss). A live process's
 * temps are its own business. Returns the paths removed.
 */
export async function sweepDeadTemps(output: string): Promise<string[]> {
  const dir = dirname(output);
  const prefix = `.${basename(output)}.tmp-`;
  const removed: string[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length));
    const pid = Number(m?.[1]);
    if (!m || pid === process.pid || pidAlive(pid)) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed.push(join(dir, name));
  }
  return removed;
}

import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The file system's "now", floored to the ms: the ctime of a probe file written in `dir` now.
 * Anything changed from this moment on, even within the same clock tick, gets a ctime at least
 * this; anything with an older ctime was last changed before. This is what decides whether a
 * hash remembered by stat fields can be trusted (a change in the same tick as the hashing would
 * leave them all as they were). Undefined when `dir` cannot be written.
 */
export function fileSystemNow(dir: string, name = 'clock.probe'): number | undefined {
  const probe = join(dir, name);
  try {
    writeFileSync(probe, `${process.pid}\n`);
    return Math.floor(statSync(probe).ctimeMs);
  } catch {
    return undefined;
  }
}

/**
 * Whether everything whose newest ctime is `newestCtimeMs` was last changed before `nowMs`
 * (fileSystemNow), so that any later change is sure to give it a new ctime. On a file system with
 * whole-second times (`coarse`), a change later in the same second keeps the ctime: there the
 * newest ctime must be older than the second `nowMs` falls in.
 */
export function settledBefore(nowMs: number, newestCtimeMs: number, coarse: boolean): boolean {
  return newestCtimeMs < (coarse ? Math.floor(nowMs / 1000) * 1000 : nowMs);
}

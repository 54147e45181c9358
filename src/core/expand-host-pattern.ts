import { join } from 'node:path';
import { runCommand } from './run-command.js';

/** Host glob expansion as the shell does it (Singularity expands %files sources the same way). */
export async function expandHostPattern(baseDir: string, pattern: string, signal?: AbortSignal): Promise<string[]> {
  const script = 'cd "$1" || exit 1; IFS=\'\n\'; for f in $2; do if [ -e "$f" ] || [ -L "$f" ]; then printf "%s\\0" "$f"; fi; done';
  const r = await runCommand('/bin/sh', ['-c', script, 'sh', baseDir, pattern], signal ? { signal } : {});
  if (r.kind !== 'exited' || r.code !== 0) return [];
  return r.output
    .split('\0')
    .filter((p) => p !== '')
    .map((p) => (p.startsWith('/') ? p : join(baseDir, p)));
}

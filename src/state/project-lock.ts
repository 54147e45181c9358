import { open, readFile, rm, mkdir } from 'node:fs/promises';
import { pidAlive } from '../core/pid-alive.js';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import type { StateDir } from './state-dir.js';

/**
 * `.orchestrator/lock`: one `up` at a time per project. Holds the owner's pid; a lock whose owner
 * is gone (crash, kill -9, power loss) is taken over.
 */
export async function acquireProjectLock(paths: StateDir): Promise<Result<{ release: () => Promise<void> }, Diagnostic>> {
  await mkdir(paths.root, { recursive: true });
  const path = paths.lock;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const h = await open(path, 'wx');
      await h.writeFile(`${process.pid}\n`);
      await h.close();
      return ok({
        release: async () => {
          const owner = await readFile(path, 'utf8').catch(() => '');
          if (owner.trim() === String(process.pid)) await rm(path, { force: true });
        },
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pidAlive(pid) && pid !== process.pid) {
        return fail(
          error('project-locked', `another orchestrator (pid ${pid}) is building this project`, {
            hint: `wait for it to finish, or stop it; if pid ${pid} is not orchestrator, remove ${path}`,
          }),
        );
      }
      await rm(path, { force: true });
    }
  }
  return fail(error('project-locked', `could not take the project lock ${path}`));
}

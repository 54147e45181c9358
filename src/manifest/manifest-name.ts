import { resolve } from 'node:path';

/** The manifest's default file name, in the project folder. */
export const MANIFEST_NAME = 'orchestrator.yaml';

/** The manifest's absolute path for `-C DIR` and `-f FILE` (FILE is relative to DIR). */
export function manifestPath(cwd: string, options: { readonly dir?: string | undefined; readonly file?: string | undefined }): string {
  return resolve(cwd, options.dir ?? '.', options.file ?? MANIFEST_NAME);
}

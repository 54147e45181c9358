import { dirname, join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { expandHostPattern } from '../core/expand-host-pattern.js';
import { runCommand } from '../core/run-command.js';
import type { FileEntry } from '../recipe/model.js';
import { toolFailure } from '../image/tool-failure.js';
import { copyUpDirs } from './copy-up.js';
import type { LayerStack } from './layer-stack.js';

export interface PlaceFilesOptions {
  readonly entries: readonly FileEntry[];
  /** Folder that relative sources are relative to (the recipe's folder). */
  readonly baseDir: string;
  /** The image as it is before this step (top first). */
  readonly stack: LayerStack;
  /** The step's upper folder, where the copies go. */
  readonly upper: string;
  /**
   * Expands a source pattern into paths to copy. Default: host paths, globbed by /bin/sh relative
   * to baseDir. `%files from STAGE` passes one that looks inside that stage's image.
   */
  readonly expand?: (pattern: string) => Promise<string[]>;
  /** Copies `sources` to `target` (a host path inside `upper`). Default: `cp -fLr` on the host. */
  readonly copy?: (sources: readonly string[], target: string) => Promise<Diagnostic | undefined>;
  readonly signal?: AbortSignal;
}


/**
 * `%files`: copies host files into the image as Singularity does (`cp -fLr`: recursive, links
 * followed), into the step's upper folder. Destinations are resolved inside the image — its
 * symlinks (`/bin -> usr/bin`) are followed the way the container sees them, never onto the host.
 * A destination that is a folder receives the sources; otherwise the source becomes that path.
 */
export async function placeFiles(options: PlaceFilesOptions): Promise<Result<void, Diagnostic>> {
  const expand = options.expand ?? ((p: string) => expandHostPattern(options.baseDir, p, options.signal));
  const copy =
    options.copy ??
    (async (sources: readonly string[], target: string) => {
      const r = await runCommand('cp', ['-fLr', '--', ...sources, target], options.signal ? { signal: options.signal } : {});
      return toolFailure('cp', 'copying %files', r);
    });
  for (const entry of options.entries) {
    options.signal?.throwIfAborted();
    const sources = await expand(entry.src);
    if (sources.length === 0) {
      return fail(
        error('files-source-missing', `%files source '${entry.src}' does not exist`, {
          location: entry.location,
          hint: `paths are relative to ${options.baseDir}; globs are expanded as the shell does`,
        }),
      );
    }
    const dst = entry.dst !== '' ? entry.dst : entry.src.startsWith('/') ? entry.src : `/${entry.src}`;
    const resolved = await options.stack.resolve(dst);
    if (resolved === null) {
      return fail(
        error('files-destination-invalid', `%files destination '${dst}' cannot be resolved in the image (a symlink loop, or a file where a folder should be)`, {
          location: entry.location,
        }),
      );
    }
    const existing = resolved === '' ? await options.stack.entry('') : await options.stack.entry(resolved);
    const intoFolder = existing?.stats.isDirectory() === true || dst.endsWith('/') || sources.length > 1;
    if (intoFolder) await copyUpDirs(options.stack, options.upper, resolved);
    else await copyUpDirs(options.stack, options.upper, dirname(resolved) === '.' ? '' : dirname(resolved));
    const target = join(options.upper, resolved);
    const failure = await copy(sources, intoFolder ? `${target}/` : target);
    if (failure) return fail({ ...failure, location: entry.location, message: `${failure.message} (for '${entry.src}' → '${dst}')` });
  }
  return ok(undefined);
}

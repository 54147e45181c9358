import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { expandHostPattern } from '../core/expand-host-pattern.js';
import { runCommand } from '../core/run-command.js';
import type { FileEntry } from '../recipe/model.js';
import type { InputFilter } from '../freshness/input-filter.js';
import { isGlob } from '../core/is-glob.js';
import { toolFailure } from '../image/tool-failure.js';
import { copyUpDirs } from './copy-up.js';
import { copyFiltered } from './filtered-copy.js';
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
  /**
   * What is left out of host folders and glob matches (input-filter.ts): the state and cache
   * folders, outputs, `.orchestratorignore`. A path named as it is written is copied as named.
   */
  readonly filter?: InputFilter;
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
    // `cp -r . DEST` (or `dir/.`) copies the folder's contents into an existing DEST, not the
    // folder itself: keep the trailing `/.` that path joining would drop.
    const contentsOf = !isGlob(entry.src) && (entry.src === '.' || entry.src.endsWith('/.'));
    const expanded = (await expand(entry.src)).map((p) => (contentsOf && !p.endsWith('/.') ? `${p === '/' ? '' : p}/.` : p));
    const filter = options.filter;
    const sources = filter && isGlob(entry.src) ? expanded.filter((p) => !filter.ignores(p)) : expanded;
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
    const failure = await copySources(sources, intoFolder ? `${target}/` : target, copy, filter);
    if (failure) return fail({ ...failure, location: entry.location, message: `${failure.message} (for '${entry.src}' → '${dst}')` });
  }
  return ok(undefined);
}

/**
 * Copies the sources to `target` (a folder when it ends in `/`): with `copy` (cp) as a whole, but
 * a host folder from which the filter leaves something out is copied entry by entry.
 */
async function copySources(
  sources: readonly string[],
  target: string,
  copy: (sources: readonly string[], target: string) => Promise<Diagnostic | undefined>,
  filter: InputFilter | undefined,
): Promise<Diagnostic | undefined> {
  // `dir/.` names the folder `dir` whose contents are copied (basename '.': into target itself).
  const folderOf = (s: string) => (s.endsWith('/.') ? s.slice(0, -2) || '/' : s);
  const filtered = async (s: string) => filter !== undefined && filter.mayIgnoreBelow(folderOf(s)) && (await stat(folderOf(s)).then((st) => st.isDirectory(), () => false));
  const needs = await Promise.all(sources.map(filtered));
  if (!needs.some(Boolean)) return copy(sources, target);
  for (const [i, s] of sources.entries()) {
    const dest = target.endsWith('/') ? join(target, basename(s)) : target;
    const failure = needs[i] ? await copyFiltered(folderOf(s), dest, filter!) : await copy([s], target);
    if (failure) return failure;
  }
  return undefined;
}

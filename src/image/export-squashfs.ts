import { chmod, open, rename, rm } from 'node:fs/promises';
import type { Diagnostic } from '../core/diagnostic.js';
import { tempSibling } from '../core/fs-atomic.js';
import { fail, ok, type Result } from '../core/result.js';
import { runCommand, type CommandRunner } from '../core/run-command.js';
import { LAUNCH_HEADER, LAUNCH_HEADER_BYTES } from './launch-header.js';
import { toolFailure } from './tool-failure.js';

export interface ExportSquashfsOptions {
  /** The root folder to pack (a merged overlay view, a sandbox). */
  readonly source: string;
  /** The `.simg` to write; replaced atomically. */
  readonly output: string;
  /**
   * Seconds since the epoch for every timestamp in the image (files and the super block): the
   * same tree and epoch give the same bytes. Absent: file times are kept, as mksquashfs does.
   */
  readonly epoch?: number;
  /** Compressor (mksquashfs -comp); default gzip, as Singularity 2.4 wrote. */
  readonly compression?: 'gzip' | 'xz' | 'zstd' | 'lzo' | 'lz4';
  readonly onOutput?: (chunk: Buffer) => void;
  /** Runs the tools (default: directly; the build engine runs them inside a mount session). */
  readonly run?: CommandRunner;
  readonly signal?: AbortSignal;
}

/**
 * Writes a Singularity 2.4 squashfs image: the 31-byte launch line, then the file system, written
 * by mksquashfs at that offset (no copy), mode 0755. Published by rename: an interrupted or failed
 * export leaves the previous image as it was.
 */
export async function exportSquashfs(options: ExportSquashfsOptions): Promise<Result<{ bytes: number }, Diagnostic>> {
  const tmp = tempSibling(options.output);
  const args = [options.source, tmp, '-offset', String(LAUNCH_HEADER_BYTES), '-noappend', '-no-progress', '-quiet'];
  args.push('-comp', options.compression ?? 'gzip');
  if (options.epoch !== undefined) args.push('-mkfs-time', String(options.epoch), '-all-time', String(options.epoch));
  try {
    const outcome = await (options.run ?? runCommand)('mksquashfs', args, {
      ...(options.onOutput ? { onOutput: options.onOutput } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const failure = toolFailure('mksquashfs', `squashfs export of ${options.source}`, outcome);
    if (failure) {
      await rm(tmp, { force: true });
      return fail(failure);
    }
    // mksquashfs leaves the first `offset` bytes zeroed: write the launch line there.
    const handle = await open(tmp, 'r+');
    let bytes: number;
    try {
      await handle.write(Buffer.from(LAUNCH_HEADER), 0, LAUNCH_HEADER_BYTES, 0);
      await handle.sync();
      bytes = (await handle.stat()).size;
    } finally {
      await handle.close();
    }
    await chmod(tmp, 0o755);
    await rename(tmp, options.output);
    return ok({ bytes });
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

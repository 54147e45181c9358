import { createHash } from 'node:crypto';
import { chmod, open, rename, rm } from 'node:fs/promises';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { tempSibling } from '../core/fs-atomic.js';
import { fail, ok, type Result } from '../core/result.js';
import { runCommand, type CommandRunner } from '../core/run-command.js';
import { LAUNCH_HEADER, LAUNCH_HEADER_BYTES } from './launch-header.js';
import { toolFailure } from './tool-failure.js';

export interface ExportExt3Options {
  readonly source: string;
  readonly output: string;
  /** File system size in bytes; default: content x 1.25, at least 10 MiB (as Singularity 2.4). */
  readonly size?: number;
  /** Seed for the UUID and hash seed, so that the same inputs give the same super block. */
  readonly seed?: string;
  /** Seconds since the epoch for the file system's own timestamps. */
  readonly epoch?: number;
  /** Runs the tools (default: directly; the build engine runs them inside a mount session). */
  readonly run?: CommandRunner;
  readonly signal?: AbortSignal;
}

const MiB = 1024 * 1024;

/** Bytes and entries under a folder, counted the way the file system will need them. */
async function measure(source: string, run: CommandRunner, signal?: AbortSignal): Promise<{ bytes: number; entries: number } | Diagnostic> {
  const du = await run('du', ['-s', '-B1', '--apparent-size', '-x', source], signal ? { signal } : {});
  const failed = toolFailure('du', `measuring ${source}`, du);
  if (failed) return failed;
  const count = await run('sh', ['-c', 'find "$1" -xdev | wc -l', 'sh', source], signal ? { signal } : {});
  const failedCount = toolFailure('find', `counting files in ${source}`, count);
  if (failedCount) return failedCount;
  return { bytes: Number.parseInt(du.output, 10), entries: Number.parseInt(count.output, 10) };
}

function uuidFrom(seed: string, salt: string): string {
  const h = createHash('sha256').update(`${salt}\0${seed}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Writes a Singularity 2.4 ext3 image: the launch line, then an ext3 file system made by
 * `mkfs.ext3 -d` at that offset, filled from `source` (owners, modes, links, devices, xattrs).
 */
export async function exportExt3(options: ExportExt3Options): Promise<Result<{ bytes: number; size: number }, Diagnostic>> {
  const run = options.run ?? runCommand;
  const m = await measure(options.source, run, options.signal);
  if ('severity' in m) return fail(m);
  // Room for metadata: 1.25x the content, a block per small file, at least 10 MiB.
  const wanted = Math.max(10 * MiB, Math.ceil((m.bytes + m.entries * 4096) * 1.25));
  const size = options.size ?? wanted;
  if (options.size !== undefined && options.size < m.bytes + m.entries * 4096) {
    return fail(
      error('ext3-too-small', `the ext3 size ${options.size} bytes cannot hold ${m.bytes} bytes in ${m.entries} files`, {
        hint: `raise 'size' to at least ${Math.ceil(wanted / MiB)}MiB, or leave it out to size the image from its content`,
      }),
    );
  }
  const blocks = Math.floor(size / 4096);
  const inodes = Math.max(1024, Math.ceil(m.entries * 1.25) + 256);
  const tmp = tempSibling(options.output);
  try {
    const handle = await open(tmp, 'w', 0o755);
    try {
      await handle.write(Buffer.from(LAUNCH_HEADER), 0, LAUNCH_HEADER_BYTES, 0);
      await handle.truncate(LAUNCH_HEADER_BYTES + blocks * 4096);
    } finally {
      await handle.close();
    }
    const seed = options.seed ?? `${Date.now()}-${Math.random()}`;
    const extended = [`offset=${LAUNCH_HEADER_BYTES}`, `hash_seed=${uuidFrom(seed, 'hash')}`].join(',');
    const env = { ...process.env, ...(options.epoch !== undefined ? { E2FSPROGS_FAKE_TIME: String(options.epoch) } : {}) };
    const outcome = await run(
      'mkfs.ext3',
      ['-q', '-F', '-b', '4096', '-N', String(inodes), '-m', '0', '-U', uuidFrom(seed, 'uuid'), '-E', extended, '-d', options.source, tmp, String(blocks)],
      { env, ...(options.signal ? { signal: options.signal } : {}) },
    );
    const failure = toolFailure('mkfs.ext3', `ext3 export of ${options.source}`, outcome);
    if (failure) {
      await rm(tmp, { force: true });
      return fail(failure);
    }
    const h = await open(tmp, 'r+');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
    await chmod(tmp, 0o755);
    await rename(tmp, options.output);
    return ok({ bytes: LAUNCH_HEADER_BYTES + blocks * 4096, size: blocks * 4096 });
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

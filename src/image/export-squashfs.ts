import { accessSync, constants } from 'node:fs';
import { chmod, open, rename, rm, stat } from 'node:fs/promises';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { tempSibling } from '../core/fs-atomic.js';
import { fail, ok, type Result } from '../core/result.js';
import { runCommand, type CommandRunner } from '../core/run-command.js';
import { unreachable } from '../core/unreachable.js';
import { LAUNCH_HEADER, LAUNCH_HEADER_BYTES } from './launch-header.js';
import { squashfsWriterArgv, squashfsWriterPath, type SquashfsLayer } from './squashfs-writer.js';
import { toolFailure } from './tool-failure.js';

/** Which program writes the file system. */
export type SquashfsWriter = 'orchestrator' | 'mksquashfs';

export interface ExportSquashfsOptions {
  /** The root folder to pack (a merged overlay view, a sandbox). */
  readonly source: string;
  /**
   * The orchestrator writer only: the layers (top first) whose overlay `source` shows. The writer
   * merges them itself, as overlayfs does, so no mount is needed (run it directly), and the
   * listing of a stable layer is remembered in the block cache. mksquashfs reads `source`.
   */
  readonly layers?: readonly SquashfsLayer[];
  /** With `layers`: where they keep overlayfs's marks (`user` in a user namespace). */
  readonly overlayXattrs?: 'trusted' | 'user';
  /** The `.simg` to write; replaced atomically. */
  readonly output: string;
  /**
   * Seconds since the epoch: file times later than it are clamped to it, earlier ones are kept,
   * and the super block carries it. The same tree and epoch give the same bytes. Absent: file
   * times are kept as they are.
   */
  readonly epoch?: number;
  /** Compressor; default gzip, as Singularity 2.4 wrote. The orchestrator writer has no lzo. */
  readonly compression?: 'gzip' | 'xz' | 'zstd' | 'lzo' | 'lz4';
  /** The compressor's level (the writer's default when absent). */
  readonly level?: number;
  /** The data block size in bytes, a power of two from 4096 to 1048576 (default 131072). */
  readonly blockSize?: number;
  /**
   * `'orchestrator'` (default) runs our own writer, native/squashfs/orchestrator-mksquashfs
   * (byte-reproducible, with a block cache); `'mksquashfs'` runs squashfs-tools (the fallback).
   */
  readonly writer?: SquashfsWriter;
  /** The orchestrator writer only: a folder of compressed blocks reused across exports (the store's `blocks/`). */
  readonly blockCache?: string;
  /** The orchestrator writer only: its progress (bytes and files, compressed vs reused), at most every 200 ms. */
  readonly onProgress?: (progress: SquashfsProgress) => void;
  readonly onOutput?: (chunk: Buffer) => void;
  /** Runs the tools (default: directly; the build engine runs them inside a mount session). */
  readonly run?: CommandRunner;
  readonly signal?: AbortSignal;
}

/** One progress line of orchestrator-mksquashfs (native/squashfs/README.md, Memory and progress). */
export interface SquashfsProgress {
  readonly phase: 'scan' | 'hash' | 'data' | 'fragments' | 'tables' | 'done';
  /** Distinct contents done and in all. */
  readonly files: number;
  readonly filesTotal: number;
  /** Uncompressed bytes done and in all. */
  readonly bytes: number;
  readonly bytesTotal: number;
  /** Bytes that went through the compressor this time, and bytes copied from the block cache. */
  readonly compressed: number;
  readonly reused: number;
}

const PHASES: ReadonlySet<string> = new Set(['scan', 'hash', 'data', 'fragments', 'tables', 'done']);

/** The progress line in `line` (the writer's output may interleave its warnings), or undefined. */
export function parseSquashfsProgress(line: string): SquashfsProgress | undefined {
  const at = line.indexOf('{"phase"');
  if (at < 0) return undefined;
  try {
    const v = JSON.parse(line.slice(at)) as Record<string, unknown>;
    const n = (k: string): number => (typeof v[k] === 'number' ? v[k] : 0);
    if (typeof v['phase'] !== 'string' || !PHASES.has(v['phase'])) return undefined;
    return {
      phase: v['phase'] as SquashfsProgress['phase'],
      files: n('files'),
      filesTotal: n('filesTotal'),
      bytes: n('bytes'),
      bytesTotal: n('bytesTotal'),
      compressed: n('compressed'),
      reused: n('reused'),
    };
  } catch {
    return undefined;
  }
}

interface Invocation {
  readonly tool: string;
  readonly file: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** The tool wrote the launch line and synced the file itself. */
  readonly headerWritten?: boolean;
}

function invocation(options: ExportSquashfsOptions, tmp: string): Result<Invocation, Diagnostic> {
  const writer = options.writer ?? 'orchestrator';
  switch (writer) {
    case 'mksquashfs': {
      const args = [options.source, tmp, '-offset', String(LAUNCH_HEADER_BYTES), '-noappend', '-no-progress', '-quiet'];
      args.push('-comp', options.compression ?? 'gzip');
      if (options.level !== undefined) args.push('-Xcompression-level', String(options.level));
      if (options.blockSize !== undefined) args.push('-b', String(options.blockSize));
      // squashfs-tools 4.5 has no clamp option: SOURCE_DATE_EPOCH clamps file times and sets the
      // super block's (and excludes -mkfs-time/-all-time, which would overwrite every time).
      if (options.epoch === undefined) return ok({ tool: 'mksquashfs', file: 'mksquashfs', args });
      return ok({ tool: 'mksquashfs', file: 'mksquashfs', args, env: { ...process.env, SOURCE_DATE_EPOCH: String(options.epoch) } });
    }
    case 'orchestrator': {
      const compression = options.compression ?? 'gzip';
      if (compression === 'lzo') {
        return fail(
          error('squashfs-writer-unsupported', `squashfs export of ${options.source}: the orchestrator writer has no lzo compressor`, {
            hint: "use gzip, xz, zstd or lz4, or writer: 'mksquashfs'",
          }),
        );
      }
      const file = squashfsWriterPath();
      try {
        accessSync(file, constants.X_OK);
      } catch {
        return fail(
          error('tool-missing', `squashfs export of ${options.source}: the squashfs writer is not built: ${file} is missing`, {
            hint: "run 'npm run build' (it needs make, a C compiler and scripts/install-system-deps.sh)",
          }),
        );
      }
      const args = squashfsWriterArgv({
        source: options.source,
        output: tmp,
        offset: LAUNCH_HEADER_BYTES,
        // Written and synced by the writer: no second open and fsync here.
        prefix: LAUNCH_HEADER,
        compression,
        ...(options.level !== undefined ? { level: options.level } : {}),
        ...(options.blockSize !== undefined ? { blockSize: options.blockSize } : {}),
        ...(options.epoch !== undefined ? { clamp: options.epoch } : {}),
        // stdout: the writer prints nothing else there; a mount session hands both streams on.
        ...(options.onProgress ? { progressFd: 1 } : {}),
        ...(options.blockCache !== undefined ? { blockCache: options.blockCache } : {}),
        ...(options.layers ? { layers: options.layers, overlayXattrs: options.overlayXattrs ?? 'trusted' } : {}),
        // Run directly (not in a mount session that takes it along): a killed build takes it too.
        dieWithParent: true,
      });
      return ok({ tool: 'orchestrator-mksquashfs', file, args, headerWritten: true });
    }
    default:
      return unreachable(writer);
  }
}

/** The output listener: the caller's, and the progress lines turned into calls of `onProgress`. */
function progressReader(options: ExportSquashfsOptions): ((chunk: Buffer) => void) | undefined {
  const { onOutput, onProgress } = options;
  if (!onProgress) return onOutput;
  let pending = '';
  return (chunk) => {
    onOutput?.(chunk);
    pending += chunk.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    if (pending.length > 65536) pending = '';
    for (const line of lines) {
      const p = parseSquashfsProgress(line);
      if (p) onProgress(p);
    }
  };
}

/**
 * Writes a Singularity 2.4 squashfs image: the 31-byte launch line, then the file system, written
 * by the chosen writer at that offset (no copy), mode 0755 (our writer writes the launch line too,
 * and syncs once). Published by rename: an interrupted or
 * failed export leaves the previous image as it was.
 */
export async function exportSquashfs(options: ExportSquashfsOptions): Promise<Result<{ bytes: number }, Diagnostic>> {
  const tmp = tempSibling(options.output);
  const how = invocation(options, tmp);
  if (!how.ok) return how;
  const { tool, file, args, env, headerWritten } = how.value;
  const onOutput = progressReader(options);
  try {
    const outcome = await (options.run ?? runCommand)(file, args, {
      ...(env ? { env } : {}),
      ...(onOutput ? { onOutput } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    // The tail in a failure is the writer's messages, not its progress lines.
    const output = outcome.output.split('\n').filter((l) => parseSquashfsProgress(l) === undefined).join('\n');
    if (options.layers && outcome.kind === 'exited' && outcome.code === 3) {
      // Layers with overlayfs marks the writer does not merge (redirects, metacopy): the caller
      // writes from a mount of them instead.
      await rm(tmp, { force: true });
      return fail(
        error('squashfs-layers-unmergeable', `squashfs export of ${options.source}: the layers cannot be merged without a mount\n${output.trim()}`, {
          hint: 'export the mounted view (no layers)',
        }),
      );
    }
    const failure = toolFailure(tool, `squashfs export of ${options.source}`, { ...outcome, output });
    if (failure) {
      await rm(tmp, { force: true });
      return fail(failure);
    }
    let bytes: number;
    if (headerWritten) {
      bytes = (await stat(tmp)).size;
    } else {
      // mksquashfs leaves the first `offset` bytes zeroed: write the launch line there.
      const handle = await open(tmp, 'r+');
      try {
        await handle.write(Buffer.from(LAUNCH_HEADER), 0, LAUNCH_HEADER_BYTES, 0);
        await handle.sync();
        bytes = (await handle.stat()).size;
      } finally {
        await handle.close();
      }
    }
    await chmod(tmp, 0o755);
    await rename(tmp, options.output);
    return ok({ bytes });
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

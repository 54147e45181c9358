/** Which program writes a squashfs image: ours (native/squashfs, with the block cache) or squashfs-tools. */
export type SquashfsWriterName = 'orchestrator' | 'mksquashfs';
export type SquashfsCompression = 'gzip' | 'xz' | 'zstd' | 'lz4' | 'lzo';

export const SQUASHFS_WRITERS: readonly SquashfsWriterName[] = ['orchestrator', 'mksquashfs'];
export const SQUASHFS_COMPRESSIONS: readonly SquashfsCompression[] = ['gzip', 'xz', 'zstd', 'lz4', 'lzo'];

/** A target's `squashfs:` key (or the one-shot build's options), every field resolved to its default. */
export interface SquashfsOptions {
  readonly writer: SquashfsWriterName;
  readonly compression: SquashfsCompression;
  /** The compressor's level; absent where the writer has none for it (mksquashfs with xz or lz4). */
  readonly level?: number;
  readonly blockSize: number;
}

/** What was written (the manifest's `squashfs:`, the build command's options): any field may be left out. */
export interface SquashfsOptionsInput {
  readonly writer?: string | undefined;
  readonly compression?: string | undefined;
  readonly level?: number | undefined;
  readonly blockSize?: number | undefined;
}

/** One bad field: which one, the message and the hint. */
export interface SquashfsOptionProblem {
  readonly field: 'writer' | 'compression' | 'level' | 'block_size';
  readonly message: string;
  readonly hint: string;
}

export const DEFAULT_BLOCK_SIZE = 131072;

/** Level ranges and defaults per writer and compressor (native/squashfs/README.md; mksquashfs -help). */
const LEVELS: Readonly<Record<SquashfsWriterName, Partial<Record<SquashfsCompression, { min: number; max: number; default: number }>>>> = {
  orchestrator: { gzip: { min: 1, max: 9, default: 9 }, xz: { min: 0, max: 9, default: 6 }, zstd: { min: 1, max: 22, default: 15 }, lz4: { min: 0, max: 12, default: 0 } },
  mksquashfs: { gzip: { min: 1, max: 9, default: 9 }, zstd: { min: 1, max: 22, default: 15 }, lzo: { min: 1, max: 9, default: 8 } },
};

/**
 * Checks and resolves squashfs options: the writer (default ours), the compressor (default gzip,
 * as Singularity 2.4 and Apptainer write), its level (in the compressor's range for that writer),
 * and the block size (a power of two, 4 KiB to 1 MiB; default 128 KiB). All problems are returned.
 */
export function resolveSquashfsOptions(input: SquashfsOptionsInput): { options?: SquashfsOptions; problems: SquashfsOptionProblem[] } {
  const problems: SquashfsOptionProblem[] = [];
  const writer = (input.writer ?? 'orchestrator') as SquashfsWriterName;
  if (!SQUASHFS_WRITERS.includes(writer)) {
    problems.push({ field: 'writer', message: `squashfs writer '${input.writer}' is not one of ${SQUASHFS_WRITERS.join(', ')}`, hint: "use 'orchestrator' (the default) or 'mksquashfs'" });
  }
  const compression = (input.compression ?? 'gzip') as SquashfsCompression;
  if (!SQUASHFS_COMPRESSIONS.includes(compression)) {
    problems.push({ field: 'compression', message: `compression '${input.compression}' is not one of ${SQUASHFS_COMPRESSIONS.join(', ')}`, hint: 'use gzip (the default), xz, zstd or lz4' });
  }
  if (problems.length > 0) return { problems };
  const range = LEVELS[writer][compression];
  if (range === undefined && compression === 'lzo') {
    problems.push({ field: 'compression', message: "the orchestrator squashfs writer has no lzo compressor", hint: "use gzip, xz, zstd or lz4, or 'writer: mksquashfs'" });
  } else if (input.level !== undefined) {
    if (range === undefined) {
      problems.push({ field: 'level', message: `mksquashfs takes no compression level for ${compression}`, hint: "remove 'level', or use the orchestrator writer (it has levels for every compressor)" });
    } else if (!Number.isInteger(input.level) || input.level < range.min || input.level > range.max) {
      problems.push({ field: 'level', message: `compression level ${input.level} is out of range for ${compression}`, hint: `use a whole number from ${range.min} to ${range.max}` });
    }
  }
  const blockSize = input.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < 4096 || blockSize > 1048576 || (blockSize & (blockSize - 1)) !== 0) {
    problems.push({ field: 'block_size', message: `block size ${input.blockSize} is not a power of two from 4 KiB to 1 MiB`, hint: 'use 4KiB, 8KiB, ... 128KiB (the default), 256KiB, 512KiB or 1MiB' });
  }
  if (problems.length > 0) return { problems };
  const level = input.level ?? range?.default;
  return { options: { writer, compression, ...(level !== undefined ? { level } : {}), blockSize }, problems };
}

/** The defaults: our writer, gzip level 9, 128 KiB blocks. */
export const DEFAULT_SQUASHFS_OPTIONS: SquashfsOptions = resolveSquashfsOptions({}).options!;

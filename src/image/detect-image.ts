import { open, realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { error, type Diagnostic, type Reason } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { readSif } from './sif/read-sif.js';
import { SIF_MAGIC } from './sif/sif-format.js';
import { sifRootPartition } from './sif/sif-partition.js';

/** The three Singularity image formats (docs/ARCHITECTURE.md, Images). */
export type ImageFormat = 'sandbox' | 'squashfs' | 'ext3';

export interface DetectedImage {
  /** Absolute, symlinks resolved. */
  readonly path: string;
  readonly format: ImageFormat;
  /** Byte offset of the file system in the file (31 with the run-singularity header); 0 for sandboxes. */
  readonly offset: number;
  /** Whether the file starts with the `#!/usr/bin/env run-singularity` line. */
  readonly header: boolean;
  /** File size in bytes; 0 for sandboxes. */
  readonly size: number;
  /** For a SIF file: the root partition (`offset` is its start); the format is the partition's. */
  readonly sif?: { readonly partitionSize: number; readonly objectId: number };
}

/** The line Singularity 2.4 writes in front of image files. */
export const RUN_SINGULARITY_HEADER = '#!/usr/bin/env run-singularity\n';

const SQUASHFS_MAGIC = 'hsqs';
const EXT_MAGIC = 0xef53;
const EXT_SUPERBLOCK = 1024;
/** What detection reads from the start of a file: the header line and an ext superblock after it. */
const PROBE_BYTES = 8192;

/**
 * Finds where the file system starts, as Singularity 2.4 and Apptainer do: a first line that is a
 * `#!` line naming `run-singularity` is skipped; the file system follows it directly.
 */
export function fileSystemOffset(head: Uint8Array): { offset: number; header: boolean } {
  if (head[0] !== 0x23 || head[1] !== 0x21) return { offset: 0, header: false };
  const newline = head.indexOf(0x0a);
  if (newline < 0 || newline > 512) return { offset: 0, header: false };
  const line = Buffer.from(head.subarray(0, newline)).toString('latin1');
  if (!line.includes('run-singularity')) return { offset: 0, header: false };
  return { offset: newline + 1, header: true };
}

function imageError(path: string, reason: Reason, message: string, hint?: string): Diagnostic {
  return error(reason, `${path}: ${message}`, { hint });
}

/** What a file that is not an image looks like, for the error message. */
export function describeContent(head: Uint8Array, size: number): string {
  if (size === 0) return 'an empty file';
  const b = Buffer.from(head);
  if (b.length >= 4 && b[0] === 0x7f && b.toString('latin1', 1, 4) === 'ELF') return 'an ELF executable';
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip-compressed data (a tar.gz layer or archive?)';
  if (b.length >= 6 && b[0] === 0xfd && b.toString('latin1', 1, 6) === '7zXZ\0') return 'xz-compressed data';
  if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'zstd-compressed data';
  if (b.length >= 3 && b.toString('latin1', 0, 3) === 'BZh') return 'bzip2-compressed data';
  if (b.length >= 4 && b.toString('latin1', 0, 4) === 'PK\x03\x04') return 'a zip archive';
  if (b.length >= 262 && b.toString('latin1', 257, 262) === 'ustar') return 'a tar archive';
  const sample = b.subarray(0, Math.min(b.length, 4096));
  const text = sample.every((c) => c === 9 || c === 10 || c === 13 || (c >= 32 && c !== 127));
  if (text) {
    const first = sample.toString('utf8').split('\n', 1)[0]!.slice(0, 60);
    return `a text file (starting '${first}')`;
  }
  return 'unrecognized binary data';
}

/** A SIF file: its root partition, checked (src/image/sif/sif-partition.ts). */
async function detectSif(path: string, real: string, size: number): Promise<Result<DetectedImage>> {
  const sif = await readSif(real, path);
  if (!sif.ok) return sif;
  const root = await sifRootPartition(path, sif.value);
  if (!root.ok) return root;
  const { format, offset, size: partitionSize, object } = root.value;
  return ok({ path: real, format, offset, header: sif.value.header.launchScript !== '', size, sif: { partitionSize, objectId: object.id } });
}

/**
 * Says what `path` is: a sandbox folder, a squashfs or ext3 image file (with or without the
 * run-singularity header), or a Diagnostic that says what it looks like instead.
 */
export async function detectImage(path: string, options: { cwd?: string; signal?: AbortSignal } = {}): Promise<Result<DetectedImage>> {
  const given = resolve(options.cwd ?? '.', path);
  let real: string;
  try {
    real = await realpath(given);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return fail(imageError(path, 'image-not-found', 'no such image file or folder'));
    if (code === 'EACCES') return fail(imageError(path, 'image-unreadable', 'permission denied'));
    throw e;
  }
  const st = await stat(real);
  if (st.isDirectory()) return ok({ path: real, format: 'sandbox', offset: 0, header: false, size: 0 });
  if (!st.isFile()) return fail(imageError(path, 'image-unrecognized', 'not an image: neither a regular file nor a folder'));

  let handle;
  try {
    handle = await open(real, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EACCES') return fail(imageError(path, 'image-unreadable', 'permission denied'));
    throw e;
  }
  try {
    const head = Buffer.alloc(PROBE_BYTES);
    const { bytesRead } = await handle.read(head, 0, PROBE_BYTES, 0);
    const probe = head.subarray(0, bytesRead);
    const { offset, header } = fileSystemOffset(probe);
    const size = st.size;
    const fsSize = size - offset;
    if (bytesRead >= 42 && probe.toString('latin1', 32, 42) === SIF_MAGIC) return await detectSif(path, real, size);

    if (bytesRead >= offset + 4 && probe.toString('latin1', offset, offset + 4) === SQUASHFS_MAGIC) {
      if (bytesRead < offset + 96) return fail(imageError(path, 'image-truncated', 'truncated squashfs image: the superblock is incomplete'));
      const major = probe.readUInt16LE(offset + 28);
      if (major !== 4) return fail(imageError(path, 'image-unsupported', `squashfs version ${major} is not supported (only 4)`));
      const bytesUsed = Number(probe.readBigUInt64LE(offset + 40));
      if (bytesUsed > fsSize) {
        return fail(
          imageError(path, 'image-truncated', `truncated squashfs image: the superblock says ${bytesUsed} bytes, the file holds ${fsSize}`, 'the copy or download was cut short; fetch or build the image again'),
        );
      }
      return ok({ path: real, format: 'squashfs', offset, header, size });
    }

    const sb = offset + EXT_SUPERBLOCK;
    if (bytesRead >= sb + 58 && probe.readUInt16LE(sb + 56) === EXT_MAGIC) {
      const blocks = probe.readUInt32LE(sb + 4);
      const blockSize = 1024 * 2 ** probe.readUInt32LE(sb + 24);
      if (blocks * blockSize > fsSize) {
        return fail(
          imageError(path, 'image-truncated', `truncated ext3 image: the superblock says ${blocks * blockSize} bytes, the file holds ${fsSize}`, 'the copy or download was cut short; fetch or build the image again'),
        );
      }
      return ok({ path: real, format: 'ext3', offset, header, size });
    }

    const what = header ? `a run-singularity header followed by ${describeContent(probe.subarray(offset), fsSize)}` : describeContent(probe, size);
    return fail(
      imageError(path, 'image-unrecognized', `not a Singularity image: ${what}`, 'expected a sandbox folder, a squashfs image (.simg), an ext3 image (.img) or a SIF image (.sif)'),
    );
  } finally {
    await handle.close();
  }
}

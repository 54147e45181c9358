import { mkdtemp, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Diagnostic } from '../../core/diagnostic.js';
import { ok, type Result } from '../../core/result.js';
import type { CommandRunner } from '../../core/run-command.js';
import { detectImage } from '../detect-image.js';
import { exportSquashfs, type ExportSquashfsOptions } from '../export-squashfs.js';
import { readImageFile } from '../image-files.js';
import { LAUNCH_HEADER_BYTES } from '../launch-header.js';
import { goArch } from './sif-format.js';
import { writeSif } from './write-sif.js';

export interface ExportSifOptions {
  /** The root folder to pack (a merged overlay view, a sandbox). */
  readonly source: string;
  /** The `.sif` to write; replaced atomically. */
  readonly output: string;
  /** Seconds since the epoch: file times are clamped to it (as for `.simg`); the SIF's times. */
  readonly epoch: number;
  /** The OCI image config of the source, written as the `JSON.Generic` object "oci-config.json". */
  readonly ociConfig?: unknown;
  /** GOARCH of the image (default: this machine's). */
  readonly arch?: string;
  /** A folder for the intermediate squashfs (default: beside the output). */
  readonly tempDir?: string;
  /** How the squashfs partition is written: writer, compressor, level, block size, block cache, progress. */
  readonly squashfs?: Pick<ExportSquashfsOptions, 'writer' | 'compression' | 'level' | 'blockSize' | 'blockCache' | 'onProgress' | 'layers' | 'overlayXattrs'>;
  /** Runs the tools (the build engine runs them inside a mount session). */
  readonly run?: CommandRunner;
  readonly signal?: AbortSignal;
}

/**
 * Writes a SIF image of a root folder: the same squashfs export as `.simg` (exportSquashfs, so
 * the same file system bytes), then the SIF around it (writeSif): the definition file and labels
 * read back from that file system (`/.singularity.d/Singularity`, `labels.json`), the OCI config
 * when the source had one. The squashfs goes to a temporary `.simg` first and is copied into the
 * SIF at its aligned offset: exportSquashfs writes at a fixed 31-byte offset, and the partition's
 * offset is known only once the objects before it are.
 */
export async function exportSif(options: ExportSifOptions): Promise<Result<{ bytes: number }, Diagnostic>> {
  const work = await mkdtemp(join(options.tempDir ?? dirname(options.output), '.sif-export-'));
  try {
    const simg = join(work, 'root.simg');
    const exported = await exportSquashfs({
      source: options.source,
      output: simg,
      epoch: options.epoch,
      ...options.squashfs,
      ...(options.run ? { run: options.run } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!exported.ok) return exported;
    const image = await detectImage(simg);
    if (!image.ok) return image;
    const read = (path: string): Promise<Buffer | undefined> => readImageFile(image.value, path, options.signal ? { signal: options.signal } : {});
    const deffile = await read('/.singularity.d/Singularity');
    const labels = await read('/.singularity.d/labels.json');
    const written = await writeSif({
      output: options.output,
      squashfs: { file: simg, offset: LAUNCH_HEADER_BYTES },
      ...(deffile && deffile.length > 0 ? { deffile } : {}),
      ...(labels && labels.length > 0 ? { labels } : {}),
      ...(options.ociConfig !== undefined ? { genericJson: [{ name: 'oci-config.json', data: Buffer.from(JSON.stringify(options.ociConfig)) }] } : {}),
      arch: options.arch ?? goArch(process.arch),
      epoch: options.epoch,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!written.ok) return written;
    return ok({ bytes: written.value.bytes });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

import { fileURLToPath } from 'node:url';

/** Compressors orchestrator-mksquashfs writes (no lzo). */
export type SquashfsWriterCompression = 'gzip' | 'xz' | 'zstd' | 'lz4';

/** What orchestrator-mksquashfs is asked to do (native/squashfs/README.md documents the options). */
export interface SquashfsWriterRequest {
  readonly source: string;
  readonly output: string;
  /** Bytes left before the file system (the caller writes the launch line there). */
  readonly offset?: number;
  /** Text at the start of those bytes (at most `offset` bytes): the launch line, synced with the image. */
  readonly prefix?: string;
  readonly compression?: SquashfsWriterCompression;
  readonly level?: number;
  readonly blockSize?: number;
  readonly jobs?: number;
  /** mtime = min(mtime, clamp); also the super block's time unless `mkfsTime` is given. */
  readonly clamp?: number;
  readonly mkfsTime?: number;
  /** A folder of compressed blocks keyed by content (shared between builds, safe to share). */
  readonly blockCache?: string;
  readonly progressFd?: number;
}

/**
 * Where `npm run build` puts our squashfs writer: native/squashfs/orchestrator-mksquashfs, two
 * folders above this file (dist/image/ and dist/bundle/ alike).
 */
export function squashfsWriterPath(): string {
  return fileURLToPath(new URL('../../native/squashfs/orchestrator-mksquashfs', import.meta.url));
}

/** The argument vector for a request (every value its own element). */
export function squashfsWriterArgv(request: SquashfsWriterRequest): string[] {
  const argv = [request.source, request.output];
  const flag = (name: string, value: number | string | undefined): void => {
    if (value !== undefined) argv.push(`--${name}`, String(value));
  };
  flag('offset', request.offset);
  flag('comp', request.compression);
  flag('level', request.level);
  flag('block-size', request.blockSize);
  flag('jobs', request.jobs);
  flag('clamp', request.clamp);
  flag('mkfs-time', request.mkfsTime);
  flag('block-cache', request.blockCache);
  flag('progress-fd', request.progressFd);
  flag('prefix', request.prefix);
  return argv;
}

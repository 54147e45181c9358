import { fileURLToPath } from 'node:url';

/** Compressors orchestrator-mksquashfs writes (no lzo). */
export type SquashfsWriterCompression = 'gzip' | 'xz' | 'zstd' | 'lz4';

/** What orchestrator-mksquashfs is asked to do (native/squashfs/README.md documents the options). */
/** A layer of the tree to write (`--layer`, or `--stable-layer` for one that never changes under its path). */
export interface SquashfsLayer {
  readonly path: string;
  /** Never changes under this path (the store's layers and snapshots): its listing is remembered in the block cache. */
  readonly stable: boolean;
}

export interface SquashfsWriterRequest {
  /** The root folder to write; ignored when `layers` are given. */
  readonly source: string;
  /** Write the overlay of these folders (top first), merged by the writer as overlayfs merges lower layers. */
  readonly layers?: readonly SquashfsLayer[];
  /** Where the layers keep overlayfs's marks: `trusted.overlay.*` as root, `user.overlay.*` in a user namespace. */
  readonly overlayXattrs?: 'trusted' | 'user';
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
  /** The writer ends (as on SIGTERM) when its parent dies, even by SIGKILL. */
  readonly dieWithParent?: boolean;
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
  const argv = request.layers ? request.layers.flatMap((l) => [l.stable ? '--stable-layer' : '--layer', l.path]) : [request.source];
  argv.push(request.output);
  const flag = (name: string, value: number | string | undefined): void => {
    if (value !== undefined) argv.push(`--${name}`, String(value));
  };
  flag('overlay-xattrs', request.layers ? request.overlayXattrs : undefined);
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
  flag('die-with-parent', request.dieWithParent ? 'yes' : undefined);
  return argv;
}

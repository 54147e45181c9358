/**
 * Which decompressor a layer's media type needs. zstd is offered only where this Node's zlib has
 * it (Node >= 22.15); elsewhere a zstd layer is a clear `unsupported-compression` failure.
 */
import * as zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { unreachable } from '../core/unreachable.js';

export type LayerCompression = 'gzip' | 'zstd' | 'none';

const MEDIA_TYPES: Readonly<Record<string, LayerCompression>> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.diff.tar.zstd': 'zstd',
};

/** The compression of a layer media type, or `unsupported-compression` naming it. */
export function compressionOf(mediaType: string): Result<LayerCompression> {
  const compression = MEDIA_TYPES[mediaType];
  if (compression === undefined)
    return fail(
      error('unsupported-compression', `unsupported layer media type '${mediaType}'`, {
        hint: `orchestrator unpacks ${Object.keys(MEDIA_TYPES)
          .filter((m) => MEDIA_TYPES[m] !== 'zstd' || zstdAvailable())
          .join(', ')}`,
      }),
    );
  return ok(compression);
}

export function zstdAvailable(): boolean {
  return typeof (zlib as unknown as { createZstdDecompress?: unknown }).createZstdDecompress === 'function';
}

/** The decompressing transform, or `unsupported-compression` (zstd on a Node without it). */
export function decompressor(compression: LayerCompression, mediaType: string | undefined): Result<Transform | undefined, Diagnostic> {
  switch (compression) {
    case 'none':
      return ok(undefined);
    case 'gzip':
      return ok(zlib.createGunzip({ chunkSize: 256 * 1024 }));
    case 'zstd': {
      const create = (zlib as unknown as { createZstdDecompress?: (o: object) => Transform }).createZstdDecompress;
      if (create === undefined)
        return fail(
          error('unsupported-compression', `layer media type '${mediaType ?? 'zstd'}' is zstd-compressed, and this Node (${process.version}) has no zstd decompressor`, {
            hint: 'use Node 22.15 or later, or an image whose layers are gzip-compressed',
          }),
        );
      return ok(create({ chunkSize: 256 * 1024 }));
    }
    default:
      return unreachable(compression);
  }
}

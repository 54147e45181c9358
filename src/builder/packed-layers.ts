import { mkdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseDigest, type Digest } from '../core/digest.js';
import { writeFileAtomic } from '../core/fs-atomic.js';
import { MEDIA_TYPES } from '../registry/media-types.js';
import type { Store } from '../store/store.js';

/** A store folder's layer as a registry blob: its compressed digest, size, media type and diffid. */
export interface PackedLayer {
  readonly digest: Digest;
  readonly size: number;
  /** An OCI layer media type (a Docker gzip layer is recorded as the OCI gzip type: same bytes). */
  readonly mediaType: string;
  readonly diffId: Digest;
  /** Where the blob came from (a pulled layer): a repository of that registry holds it. */
  readonly registry?: string | undefined;
  readonly repository?: string | undefined;
  /** The root entry's time the blob was packed with (a packed snapshot). */
  readonly rootMtime?: number | undefined;
}

interface RecordFile extends PackedLayer {
  /** The snapshot folder the record is about (inode and birth time): a rebuilt folder is another. */
  readonly ino?: number;
  readonly birthtimeMs?: number;
}

const LAYER_TYPES: Readonly<Record<string, string>> = {
  [MEDIA_TYPES.ociLayerGzip]: MEDIA_TYPES.ociLayerGzip,
  [MEDIA_TYPES.dockerLayerGzip]: MEDIA_TYPES.ociLayerGzip,
  [MEDIA_TYPES.ociLayerZstd]: MEDIA_TYPES.ociLayerZstd,
  [MEDIA_TYPES.ociLayerTar]: MEDIA_TYPES.ociLayerTar,
};

/**
 * What each store layer folder is as a registry blob (docs/ARCHITECTURE.md, Store), so that a push
 * sends the stored original blob of a pulled layer (or mounts it) and asks the registry about a
 * packed step snapshot with one `HEAD` instead of packing it again. Records live in
 * `ROOT/packed/<kind>-<name>.json`, written atomically: `layers-<diffid hex>` (content-addressed,
 * always true) and `snapshots-<key>` (true for the folder with that inode and birth time only, as
 * a step run again under the same key may make other bytes).
 */
export class PackedLayers {
  constructor(private readonly store: Store) {}

  private file(folder: string): string | undefined {
    const parent = dirname(folder);
    if (parent !== this.store.layersDir && parent !== this.store.snapshotsDir) return undefined;
    return join(this.store.root, 'packed', `${basename(parent)}-${basename(folder)}.json`);
  }

  /** Whether `folder` can have a record: a folder of the store's layers or snapshots. */
  recordable(folder: string): boolean {
    return this.file(folder) !== undefined;
  }

  /** The layer type to record for a pulled blob's media type; undefined for foreign or unknown layers. */
  static mediaTypeOf(mediaType: string): string | undefined {
    return LAYER_TYPES[mediaType];
  }

  /** The record of `folder`, when there is one and it is about this very folder (and `rootMtime`, if given). */
  async read(folder: string, rootMtime?: number): Promise<PackedLayer | undefined> {
    const file = this.file(folder);
    if (file === undefined) return undefined;
    try {
      const data = JSON.parse(await readFile(file, 'utf8')) as Partial<RecordFile>;
      const digest = parseDigest(String(data.digest));
      const diffId = parseDigest(String(data.diffId));
      if (!digest || !diffId || typeof data.size !== 'number' || typeof data.mediaType !== 'string') return undefined;
      if (data.ino !== undefined) {
        const st = await stat(folder);
        if (st.ino !== data.ino || st.birthtimeMs !== data.birthtimeMs || data.rootMtime !== rootMtime) return undefined;
      }
      return {
        digest,
        diffId,
        size: data.size,
        mediaType: data.mediaType,
        ...(typeof data.registry === 'string' && typeof data.repository === 'string' ? { registry: data.registry, repository: data.repository } : {}),
        ...(data.rootMtime !== undefined ? { rootMtime: data.rootMtime } : {}),
      };
    } catch {
      // No record, a half-written one from an older layout, or the folder is gone: pack it.
      return undefined;
    }
  }

  /** Records what `folder` is as a blob (never fails: a record only saves work). A snapshot's record is tied to the folder's inode and birth time. */
  async write(folder: string, layer: PackedLayer): Promise<void> {
    const file = this.file(folder);
    if (file === undefined) return;
    try {
      let identity: { ino?: number; birthtimeMs?: number } = {};
      if (dirname(folder) === this.store.snapshotsDir) {
        const st = await stat(folder);
        identity = { ino: st.ino, birthtimeMs: st.birthtimeMs };
      }
      await mkdir(dirname(file), { recursive: true });
      await writeFileAtomic(file, JSON.stringify({ ...layer, ...identity }) + '\n');
    } catch {
      // A record only saves work: without it the folder is packed again.
    }
  }
}

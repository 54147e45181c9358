/**
 * The records that let `push` skip packing (src/builder/packed-layers.ts): a pulled layer's record
 * holds for its content-addressed folder; a snapshot's holds only for that very folder (a step run
 * again under the same key is another folder) and the root time it was packed with.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PackedLayers } from '../../src/builder/packed-layers.js';
import { sha256Digest } from '../../src/core/digest.js';
import { MEDIA_TYPES } from '../../src/registry/media-types.js';
import { Store } from '../../src/store/store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orch-packed-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const blob = sha256Digest(new Uint8Array([1]));
const diffId = sha256Digest(new Uint8Array([2]));

describe('PackedLayers', () => {
  it('keeps a snapshot record for that folder and root time only; a pulled layer record with its source', async () => {
    const store = await Store.open({ dir });
    const packed = new PackedLayers(store);
    const snap = store.snapshotPath('k1');
    await mkdir(snap);
    await packed.write(snap, { digest: blob, size: 1, mediaType: MEDIA_TYPES.ociLayerGzip, diffId, rootMtime: 0 });
    expect(await packed.read(snap, 0)).toEqual({ digest: blob, size: 1, mediaType: MEDIA_TYPES.ociLayerGzip, diffId, rootMtime: 0 });
    expect(await packed.read(snap, 5)).toBeUndefined();
    // Pruned and built again under the same key: another folder, maybe other bytes.
    await rm(snap, { recursive: true });
    await writeFile(join(dir, 'keep-inode-busy'), 'x');
    await mkdir(snap);
    expect(await packed.read(snap, 0)).toBeUndefined();

    const layer = store.layerPath(diffId);
    await mkdir(layer);
    expect(PackedLayers.mediaTypeOf(MEDIA_TYPES.dockerLayerGzip)).toBe(MEDIA_TYPES.ociLayerGzip);
    expect(PackedLayers.mediaTypeOf(MEDIA_TYPES.dockerForeignLayer)).toBeUndefined();
    await packed.write(layer, { digest: blob, size: 1, mediaType: MEDIA_TYPES.ociLayerGzip, diffId, registry: 'r:5000', repository: 'a/b' });
    expect(await packed.read(layer)).toMatchObject({ digest: blob, registry: 'r:5000', repository: 'a/b' });
    // Folders outside the store's layers and snapshots have no record.
    await packed.write(join(dir, 'elsewhere'), { digest: blob, size: 1, mediaType: MEDIA_TYPES.ociLayerGzip, diffId });
    expect(await packed.read(join(dir, 'elsewhere'))).toBeUndefined();
  });
});

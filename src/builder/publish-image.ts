import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { sha256Digest, type Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';
import { writeSnapshotTar } from '../layers/snapshot-tar.js';
import { MEDIA_TYPES } from '../registry/media-types.js';
import { pushImage, type PushBlobInput, type PushedImage } from '../registry/push-image.js';
import type { ImageReference } from '../registry/reference.js';
import type { PushedBlob, RegistryClient } from '../registry/registry-client.js';
import type { Store } from '../store/store.js';
import { LayerStack } from './layer-stack.js';
import { PackedLayers, type PackedLayer } from './packed-layers.js';
import { previousMetadata } from './run-step.js';
import type { PreviousMetadata } from './singularity-metadata.js';

export interface PublishImageOptions {
  readonly client: RegistryClient;
  readonly store: Store;
  /** The image's folders, top first (an overlay stack: store snapshots and layers, or one plain folder). */
  readonly lowers: readonly string[];
  /** `amd64`, `arm64`. */
  readonly architecture: string;
  readonly onBlob?: (blob: PushedBlob) => void;
  readonly signal?: AbortSignal | undefined;
}

export interface PublishedImage extends PushedImage {
  /** Layers in the manifest (bottom first), and how many of them were uploaded. */
  readonly layers: number;
  readonly uploadedLayers: number;
}

/** `export NAME="VALUE"` and `export NAME="${NAME:-"VALUE"}"` lines of the env scripts we write (singularity-metadata.ts). */
function envFromScript(script: string | undefined): string[] {
  const out: string[] = [];
  for (const line of (script ?? '').split('\n')) {
    const plain = /^export ([A-Za-z_][A-Za-z0-9_]*)="([^"$`\\]*)"$/.exec(line.trim());
    const defaulted = /^export ([A-Za-z_][A-Za-z0-9_]*)="\$\{\1:-"([^"$`\\]*)"\}"$/.exec(line.trim());
    const m = plain ?? defaulted;
    if (m) out.push(`${m[1]}=${m[2]}`);
  }
  return out;
}

/**
 * The OCI image config of a Singularity image, mapped back as Apptainer maps Docker's forward:
 * `Env` from the base image's environment script (`10-docker2singularity.sh`), `Cmd` the
 * runscript, `Labels` from `labels.json`. No times beyond the build date the labels carry, so the
 * same image gives the same config.
 */
function imageConfig(meta: PreviousMetadata | undefined, diffIds: readonly Digest[], architecture: string): Uint8Array {
  const env = envFromScript(meta?.dockerEnv);
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  const labels = meta?.labels ?? {};
  const created = labels['org.label-schema.build-date'];
  const config = {
    ...(created !== undefined ? { created } : {}),
    architecture,
    os: 'linux',
    config: {
      Env: env,
      ...(meta?.runscript !== undefined ? { Cmd: ['/.singularity.d/runscript'] } : { Cmd: ['/bin/sh'] }),
      ...(Object.keys(labels).length > 0 ? { Labels: Object.fromEntries(Object.keys(labels).sort().map((k) => [k, labels[k]])) } : {}),
      WorkingDir: '/',
    },
    rootfs: { type: 'layers', diff_ids: diffIds },
  };
  return new Uint8Array(Buffer.from(JSON.stringify(config)));
}

/**
 * A folder's layer without packing it, from its record (packed-layers.ts): a pulled layer's
 * stored original blob (mounted from its repository when that is on the same registry), or a
 * packed snapshot's blob when the registry has it already (one `HEAD`). Undefined: pack it.
 */
async function storedBlob(
  packed: PackedLayers,
  folder: string,
  rootMtime: number,
  ref: ImageReference,
  options: PublishImageOptions,
): Promise<(PushBlobInput & { readonly diffId: Digest }) | undefined> {
  const layer = await packed.read(folder, rootMtime);
  if (!layer) return undefined;
  const base = { mediaType: layer.mediaType, diffId: layer.diffId };
  const path = options.store.blobPath(layer.digest);
  if (await stat(path).then((st) => st.isFile() && st.size === layer.size, () => false)) {
    const mountFrom = layer.registry === ref.registry && layer.repository !== undefined ? [layer.repository] : undefined;
    return { ...base, source: { digest: layer.digest, size: layer.size, path }, mountFrom };
  }
  // Its blob was pruned from the store: the registry may have it still.
  const there = await options.client.blobExists(ref, layer, { signal: options.signal });
  return there.ok && there.value ? { ...base, source: { digest: layer.digest, size: layer.size, path }, present: true } : undefined;
}

/** A packed layer kept among the store's blobs (fsync, rename: the writer computed its digest as it wrote it). */
async function keepBlob(store: Store, file: string, digest: Digest): Promise<string> {
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  const path = store.blobPath(digest);
  await mkdir(dirname(path), { recursive: true });
  await rename(file, path);
  return path;
}

/**
 * Publishes an image as a standard OCI image (README, "Publishing images"): one gzip layer per
 * folder of its stack, bottom first (written by writeSnapshotTar: reproducible, so an unchanged
 * step gives the same blob and is not uploaded again), and a config from its Singularity metadata.
 */
export async function publishImage(ref: ImageReference, options: PublishImageOptions): Promise<Result<PublishedImage, Diagnostic>> {
  const { store, signal } = options;
  const files: string[] = [];
  try {
    const meta = await previousMetadata(new LayerStack(options.lowers));
    // Snapshot folders' own times change when they are reused: the root entries get fixed ones,
    // 0 below and the image's time in the top layer (whose root is the image's root), so that an
    // unchanged step gives the same layer in every push.
    const created = Date.parse(meta?.labels?.['org.label-schema.build-date'] ?? '');
    const imageTime = Number.isFinite(created) ? Math.floor(created / 1000) : 0;
    const packed = new PackedLayers(store);
    const recorded: Array<{ folder: string; layer: PackedLayer }> = [];
    const layers: PushBlobInput[] = [];
    const diffIds: Digest[] = [];
    for (const [i, folder] of [...options.lowers].reverse().entries()) {
      const rootMtime = i === options.lowers.length - 1 ? imageTime : 0;
      const known = await storedBlob(packed, folder, rootMtime, ref, options);
      if (known) {
        layers.push(known);
        diffIds.push(known.diffId);
        const layer = await packed.read(folder, rootMtime);
        if (layer?.rootMtime !== undefined) recorded.push({ folder, layer });
        continue;
      }
      const file = store.tempPath('push-layer.tar.gz');
      files.push(file);
      const tar = await writeSnapshotTar({ folder, output: file, compression: 'gzip', rootMtime, signal });
      if (!tar.ok) return tar;
      const { digest, size, mediaType, diffId } = tar.value;
      // A store folder's blob is kept (and recorded), so that its next push packs nothing.
      const path = packed.recordable(folder) ? await keepBlob(store, file, digest) : file;
      layers.push({ source: { digest, size, path }, mediaType });
      diffIds.push(diffId);
      recorded.push({ folder, layer: { digest, size, mediaType, diffId, rootMtime } });
    }
    if (layers.length === 0) return fail(error('unexpected', 'an image without layers'));
    const config = imageConfig(meta, diffIds, options.architecture);
    const pushed = await pushImage(ref, {
      client: options.client,
      config: { source: { digest: sha256Digest(config), size: config.length, bytes: config }, mediaType: MEDIA_TYPES.ociConfig },
      layers,
      onBlob: options.onBlob,
      signal,
    });
    if (!pushed.ok) return pushed;
    // The steps' blobs are now in this repository too: the next push elsewhere on this registry mounts them.
    for (const r of recorded) await packed.write(r.folder, { ...r.layer, registry: ref.registry, repository: ref.repository });
    const layerBlobs = pushed.value.blobs.slice(1);
    return ok({ ...pushed.value, layers: layerBlobs.length, uploadedLayers: layerBlobs.filter((b) => b.how === 'uploaded').length });
  } finally {
    for (const f of files) await rm(f, { force: true });
  }
}

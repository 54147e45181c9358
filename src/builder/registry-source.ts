import PQueue from 'p-queue';
import type { Diagnostic, SourceLocation } from '../core/diagnostic.js';
import type { Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';
import { unpackLayer, unpackWarnings } from '../layers/unpack-layer.js';
import type { Platform } from '../registry/media-types.js';
import { formatReference, parseReference, withDigest } from '../registry/reference.js';
import type { RegistryClient } from '../registry/registry-client.js';
import type { RegistryEventListener } from '../registry/registry-events.js';
import type { Store } from '../store/store.js';
import type { SourceSpec } from './build-source.js';
import { PackedLayers } from './packed-layers.js';
import { storedImage } from './stored-image.js';
import { DEFAULT_PLATFORM } from '../registry/platform.js';
import { imageConfigFromOci } from './image-config.js';

/** Tag pins (orchestrator.lock): the digest a tag was resolved to, and a way to record a new one. */
export interface TagPins {
  get(reference: string): Digest | undefined;
  record(reference: string, top: Digest, platform: Platform, manifest: Digest): void;
}

export interface RegistrySourceOptions {
  readonly store: Store;
  readonly client: RegistryClient;
  readonly platform?: Platform;
  readonly pins?: TagPins;
  /** Recipe header `Registry:`/`Namespace:`, and where the reference was written. */
  readonly registry?: string;
  readonly namespace?: string;
  readonly location?: SourceLocation;
  readonly onEvent?: RegistryEventListener;
  readonly signal?: AbortSignal;
}

/**
 * A `docker://` source: pulled into the store (verified blobs), each layer unpacked once into
 * overlay format (`layers/<diffid>`), keyed by the image manifest digest. Tags are resolved once
 * and pinned; the pin is used until `--pull`.
 */
export async function registrySource(text: string, options: RegistrySourceOptions): Promise<Result<SourceSpec, Diagnostic>> {
  const parsed = parseReference(text, { registry: options.registry, namespace: options.namespace, location: options.location });
  if (!parsed.ok) return parsed;
  let ref = parsed.value;
  const name = formatReference(ref);
  const pin = ref.digest === undefined ? options.pins?.get(name) : undefined;
  if (pin) ref = withDigest(ref, pin);
  // Pinned and already here: nothing to ask the registry, nothing to load for it.
  if (ref.digest !== undefined) {
    const stored = await storedImage(options.store, ref.digest, options.platform ?? DEFAULT_PLATFORM, name);
    if (stored) return ok(stored);
  }
  const { pullImage } = await import('../registry/pull-image.js');
  const pulled = await pullImage(ref, {
    store: options.store,
    client: options.client,
    ...(options.platform ? { platform: options.platform } : {}),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    signal: options.signal,
  });
  if (!pulled.ok) return pulled;
  const image = pulled.value;
  if (parsed.value.digest === undefined) options.pins?.record(name, image.indexDigest ?? image.digest, image.platform, image.digest);

  // Unpack what is not unpacked yet, two at a time (gunzip and file creation keep a core busy each).
  const queue = new PQueue({ concurrency: 2 });
  const results = await Promise.all(
    image.layers.map((layer) =>
      queue.add(() =>
        unpackLayer({
          source: options.store.blobPath(layer.digest),
          mediaType: layer.mediaType,
          expectedDiffId: layer.diffId,
          layerDigest: layer.digest,
          destination: options.store.layerPath(layer.diffId),
          tmpDir: options.store.tmpDir,
          ...(options.signal ? { signal: options.signal } : {}),
        }),
      ),
    ),
  );
  for (const r of results) if (r && !r.ok) return fail(r.error);
  const warnings = unpackWarnings(results.flatMap((r) => (r?.ok ? [r.value] : [])), name);
  // What each layer folder is as a blob, so that a push sends (or mounts) this blob (publish-image.ts).
  const packed = new PackedLayers(options.store);
  for (const l of image.layers) {
    const mediaType = PackedLayers.mediaTypeOf(l.mediaType);
    if (mediaType === undefined) continue;
    await packed.write(options.store.layerPath(l.diffId), { digest: l.digest, size: l.size, mediaType, diffId: l.diffId, registry: ref.registry, repository: ref.repository });
  }
  const lowers = image.layers.map((l) => options.store.layerPath(l.diffId)).reverse();
  return ok({
    kind: 'layers',
    key: { manifest: image.digest },
    layers: lowers,
    config: imageConfigFromOci(image.config),
    description: `${name}@${image.digest}`,
    blobs: [...image.layers.map((l) => options.store.blobPath(l.digest)), options.store.blobPath(image.configDigest)],
    ...(warnings.length > 0 ? { warnings } : {}),
  });
}

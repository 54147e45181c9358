import { readFile, stat } from 'node:fs/promises';
import { parseDigest, sha256Digest, type Digest } from '../core/digest.js';
import { parseManifest } from '../registry/media-types.js';
import type { Platform } from '../registry/media-types.js';
import { selectPlatform } from '../registry/platform.js';
import type { Store } from '../store/store.js';
import type { SourceSpec } from './build-source.js';
import { imageConfigFromOci } from './image-config.js';

async function readVerified(store: Store, digest: Digest): Promise<Buffer | undefined> {
  const bytes = await readFile(store.blobPath(digest)).catch(() => undefined);
  return bytes && sha256Digest(bytes) === digest ? bytes : undefined;
}

/**
 * A registry image already pulled and unpacked, read from the store alone: the manifest and config
 * blobs (verified, they are small) and every layer folder present. No registry, no HTTP stack, no
 * re-hashing of layer blobs (they were verified when they were written, and unpacked folders exist
 * only complete). Undefined when anything is missing: then the image is pulled as usual.
 */
export async function storedImage(store: Store, digest: Digest, platform: Platform, description: string): Promise<SourceSpec | undefined> {
  let manifestDigest = digest;
  let bytes = await readVerified(store, digest);
  if (!bytes) return undefined;
  let parsed = parseManifest(bytes, undefined, description);
  if (parsed.ok && parsed.value.kind === 'index') {
    const chosen = selectPlatform(parsed.value.manifests, platform, description);
    if (!chosen.ok) return undefined;
    manifestDigest = chosen.value.digest;
    bytes = await readVerified(store, manifestDigest);
    if (!bytes) return undefined;
    parsed = parseManifest(bytes, undefined, description);
  }
  if (!parsed.ok || parsed.value.kind !== 'manifest') return undefined;
  const manifest = parsed.value;
  const configBytes = await readVerified(store, manifest.config.digest);
  if (!configBytes) return undefined;
  const config = JSON.parse(configBytes.toString('utf8')) as { rootfs?: { diff_ids?: string[] } };
  const diffIds = (config.rootfs?.diff_ids ?? []).map((d) => parseDigest(d));
  if (diffIds.length !== manifest.layers.length || diffIds.some((d) => d === undefined)) return undefined;
  const layers = diffIds.map((d) => store.layerPath(d!));
  for (const l of layers) if (!(await stat(l).then((s) => s.isDirectory(), () => false))) return undefined;
  return {
    kind: 'layers',
    key: { manifest: manifestDigest },
    layers: [...layers].reverse(),
    config: imageConfigFromOci(config),
    description: `${description}@${manifestDigest}`,
    blobs: [...manifest.layers.map((l) => store.blobPath(l.digest)), store.blobPath(manifest.config.digest)],
  };
}

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, rename, rm, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { type Digest } from '../core/digest.js';
import { tempSibling } from '../core/fs-atomic.js';
import { fail, ok, type Result } from '../core/result.js';
import { readSif } from '../image/sif/read-sif.js';
import { GO_ZERO_TIME } from '../image/sif/sif-format.js';
import {
  CREATED_ANNOTATION,
  formatOrasReference,
  SIF_CONFIG_BYTES,
  SIF_CONFIG_DIGEST,
  SIF_CONFIG_MEDIA_TYPE,
  SIF_LAYER_MEDIA_TYPE,
  sifLayerOf,
  TITLE_ANNOTATION,
} from '../registry/oras.js';
import { pushImage, type PushedImage } from '../registry/push-image.js';
import type { Platform } from '../registry/media-types.js';
import { DEFAULT_PLATFORM } from '../registry/platform.js';
import { parseReference, withDigest, type ImageReference } from '../registry/reference.js';
import type { PushedBlob, RegistryClient } from '../registry/registry-client.js';
import type { Store } from '../store/store.js';
import type { SourceSpec } from './build-source.js';
import type { TagPins } from './registry-source.js';

async function fileDigest(path: string, signal?: AbortSignal): Promise<Digest> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, signal ? { signal } : {}) as AsyncIterable<Buffer>) hash.update(chunk);
  return `sha256:${hash.digest('hex')}` as Digest;
}

/** `2023-12-19T16:02:14Z` from the SIF header's seconds, as Apptainer annotates; none for a deterministic SIF. */
function createdOf(seconds: bigint): string | undefined {
  if (seconds === GO_ZERO_TIME) return undefined;
  const ms = Number(seconds) * 1000;
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return undefined;
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Pushes a SIF file as Apptainer's ORAS artifact (src/registry/oras.ts): the file is read by the
 * SIF reader first, so a file that is not a SIF is refused before anything is sent.
 */
export async function pushSif(
  ref: ImageReference,
  path: string,
  options: { client: RegistryClient; shownAs?: string; onBlob?: (b: PushedBlob) => void; signal?: AbortSignal },
): Promise<Result<PushedImage & { size: number }>> {
  const shown = options.shownAs ?? path;
  const hint = 'oras:// carries one SIF file: give a .sif file, or a target built with format: sif';
  if (await stat(path).then((s) => s.isDirectory(), () => false)) return fail(error('image-not-sif', `${shown} is a folder, not a SIF file`, { hint }));
  const sif = await readSif(path, shown);
  if (!sif.ok) {
    if (sif.error.reason === 'image-not-found' || sif.error.reason === 'image-unreadable') return sif;
    return fail(error('image-not-sif', `${shown} is not a SIF file: ${sif.error.message}`, { hint }));
  }
  const { size } = await stat(path);
  const digest = await fileDigest(path, options.signal);
  const created = createdOf(sif.value.header.createdAt);
  const pushed = await pushImage(ref, {
    client: options.client,
    config: { source: { digest: SIF_CONFIG_DIGEST, size: SIF_CONFIG_BYTES.length, bytes: SIF_CONFIG_BYTES }, mediaType: SIF_CONFIG_MEDIA_TYPE },
    layers: [{ source: { digest, size, path }, mediaType: SIF_LAYER_MEDIA_TYPE, annotations: { [TITLE_ANNOTATION]: basename(path) } }],
    annotations: created !== undefined ? { [CREATED_ANNOTATION]: created } : undefined,
    onBlob: options.onBlob,
    signal: options.signal,
  });
  return pushed.ok ? ok({ ...pushed.value, size }) : pushed;
}

export interface PulledSif {
  /** The reference pinned to the manifest's digest. */
  readonly reference: ImageReference;
  readonly digest: Digest;
  /** The SIF file in the store's blobs (content-addressed, verified). */
  readonly blobPath: string;
  readonly layerDigest: Digest;
  readonly size: number;
  /** False when the blob was already in the store. */
  readonly downloaded: boolean;
}

/**
 * Fetches an `oras://` SIF into the store: the manifest (its layer must be the SIF media type), the
 * blob verified by digest, then read by the SIF reader. A blob that is not a SIF is removed again.
 */
export async function fetchSif(ref: ImageReference, options: { client: RegistryClient; store: Store; signal?: AbortSignal }): Promise<Result<PulledSif>> {
  const what = formatOrasReference(ref);
  const m = await options.client.getManifest(ref, { store: options.store, signal: options.signal });
  if (!m.ok) return m;
  if (m.value.manifest.kind !== 'manifest') {
    return fail(error('oras-wrong-media-type', `${what}: an image index, not a SIF artifact`, { hint: 'pull container images with docker://' }));
  }
  const layer = sifLayerOf(m.value.manifest, what);
  if (!layer.ok) return layer;
  const blob = await options.client.fetchBlob(ref, layer.value, { store: options.store, signal: options.signal });
  if (!blob.ok) return blob;
  const sif = await readSif(blob.value.path, what);
  if (!sif.ok) {
    await rm(blob.value.path, { force: true });
    return fail(error('oras-not-sif', `${what}: the layer is not a SIF file: ${sif.error.message}`, { hint: 'the artifact was pushed with the SIF media type but other content; nothing was kept' }));
  }
  return ok({
    reference: withDigest(ref, m.value.digest),
    digest: m.value.digest,
    blobPath: blob.value.path,
    layerDigest: layer.value.digest,
    size: blob.value.size,
    downloaded: blob.value.written,
  });
}

/** Copies a pulled SIF to `dest` atomically (temp sibling, rename): the old file or the new one, never half. */
export async function publishSif(blobPath: string, dest: string): Promise<void> {
  const tmp = tempSibling(dest);
  try {
    await copyFile(blobPath, tmp);
    // A SIF starts with its launch line, like the files Apptainer pulls: executable.
    await chmod(tmp, 0o755);
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

export interface OrasSourceOptions {
  readonly store: Store;
  readonly client: RegistryClient;
  /** orchestrator.lock: the tag is pinned to the manifest digest under `oras://REF`. */
  readonly pins?: TagPins;
  readonly platform?: Platform;
  readonly location?: Diagnostic['location'];
  readonly signal?: AbortSignal;
}

/**
 * `from: oras://REF` / `Bootstrap: oras`: the SIF pulled into the store (once per digest) and used
 * as a local image file is. A tag resolves through its pin unless the run ignores pins (--pull).
 */
export async function orasSource(text: string, options: OrasSourceOptions): Promise<Result<SourceSpec, Diagnostic>> {
  const parsed = parseReference(text.startsWith('oras://') ? `docker://${text.slice('oras://'.length)}` : text, options.location ? { location: options.location } : {});
  if (!parsed.ok) return parsed;
  const key = formatOrasReference(parsed.value);
  const pin = parsed.value.digest === undefined ? options.pins?.get(key) : undefined;
  const sif = await fetchSif(pin !== undefined ? withDigest(parsed.value, pin) : parsed.value, options);
  if (!sif.ok) return sif;
  if (parsed.value.digest === undefined) options.pins?.record(key, sif.value.digest, options.platform ?? DEFAULT_PLATFORM, sif.value.digest);
  return ok({ kind: 'local', path: sif.value.blobPath });
}

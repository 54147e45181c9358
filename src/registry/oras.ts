import { error } from '../core/diagnostic.js';
import { sha256Digest, type Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';
import type { Descriptor, ImageManifest } from './media-types.js';
import { parseReference, type ImageReference } from './reference.js';

/**
 * SIF images as ORAS artifacts, the way Apptainer writes them (`apptainer push FILE oras://...`,
 * internal/pkg/client/oras): an OCI image manifest without `artifactType` whose config is the
 * empty JSON `{}` under the SIF config media type, one layer (the SIF file itself, titled with the
 * file name) and, when the SIF header has a creation time, `org.opencontainers.image.created`.
 */
export const SIF_CONFIG_MEDIA_TYPE = 'application/vnd.sylabs.sif.config.v1+json';
export const SIF_LAYER_MEDIA_TYPE = 'application/vnd.sylabs.sif.layer.v1.sif';
export const TITLE_ANNOTATION = 'org.opencontainers.image.title';
export const CREATED_ANNOTATION = 'org.opencontainers.image.created';

export const ORAS_SCHEME = 'oras://';

/** The config blob of a SIF artifact: `{}`. */
export const SIF_CONFIG_BYTES = new Uint8Array(Buffer.from('{}'));
export const SIF_CONFIG_DIGEST: Digest = sha256Digest(SIF_CONFIG_BYTES);

/** Parses `oras://[HOST[:PORT]/]PATH[:TAG][@sha256:HEX]`: the same reference as docker://, another scheme. */
export function parseOrasReference(text: string): Result<ImageReference> {
  const trimmed = text.trim();
  if (!trimmed.startsWith(ORAS_SCHEME)) {
    return fail(error('bad-reference', `'${text}' is not an oras:// reference`, { hint: 'write oras://REGISTRY/REPOSITORY:TAG' }));
  }
  return parseReference(`docker://${trimmed.slice(ORAS_SCHEME.length)}`);
}

/** `oras://` + canonical form. */
export function formatOrasReference(ref: ImageReference): string {
  return `${ORAS_SCHEME}${ref.canonical}`;
}

/**
 * The SIF layer of a pulled manifest: exactly one layer with the SIF media type (Apptainer refuses
 * anything else too). A Docker image or another artifact is one clear error.
 */
export function sifLayerOf(manifest: ImageManifest, what: string): Result<Descriptor> {
  const sifs = manifest.layers.filter((l) => l.mediaType === SIF_LAYER_MEDIA_TYPE);
  if (sifs.length === 1) return ok(sifs[0]!);
  const types = [...new Set(manifest.layers.map((l) => l.mediaType))].join(', ') || 'no layers';
  return fail(
    error(
      'oras-wrong-media-type',
      sifs.length === 0 ? `${what}: not a SIF artifact (layer media type ${types}, config ${manifest.config.mediaType})` : `${what}: ${sifs.length} SIF layers; expected one`,
      { hint: `oras:// images have one layer of type ${SIF_LAYER_MEDIA_TYPE} (apptainer push / orchestrator push FILE.sif oras://...); pull container images with docker://` },
    ),
  );
}

import { sha256Digest, type Digest } from '../core/digest.js';
import { MEDIA_TYPES, type Descriptor } from './media-types.js';

/** The OCI empty descriptor's content: the config of an artifact that has none. */
export const EMPTY_JSON = new Uint8Array(Buffer.from('{}'));

/** `application/vnd.oci.empty.v1+json`, `{}`: the config descriptor of artifacts (OCI image spec 1.1). */
export const EMPTY_CONFIG: Descriptor = { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256Digest(EMPTY_JSON), size: EMPTY_JSON.length };

export interface OciManifestInput {
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  /** The artifact's type (OCI 1.1); registries and clients list and filter by it. */
  readonly artifactType?: string | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  /** The manifest this one refers to (signatures, SBOMs): the referrers API lists it there. */
  readonly subject?: Descriptor | undefined;
}

/** Manifest bytes ready to push: what to send, its `Content-Type`, and the digest it will have. */
export interface OciManifestBytes {
  readonly mediaType: string;
  readonly bytes: Uint8Array;
  readonly digest: Digest;
  readonly size: number;
}

function descriptorJson(d: Descriptor): Record<string, unknown> {
  return {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    ...(d.urls && d.urls.length > 0 ? { urls: d.urls } : {}),
    ...(d.annotations && Object.keys(d.annotations).length > 0 ? { annotations: sortedRecord(d.annotations) } : {}),
    ...(d.platform ? { platform: d.platform } : {}),
  };
}

function sortedRecord(record: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.keys(record).sort().map((k) => [k, record[k] as string]));
}

/**
 * An OCI image manifest (`application/vnd.oci.image.manifest.v1+json`) as bytes: fields in the
 * spec's order, annotations sorted, no whitespace, so the same input gives the same digest on any
 * machine. Images, and artifacts (`artifactType`, `EMPTY_CONFIG` when there is no config) alike.
 */
export function ociManifest(input: OciManifestInput): OciManifestBytes {
  const json = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    ...(input.artifactType !== undefined ? { artifactType: input.artifactType } : {}),
    config: descriptorJson(input.config),
    layers: input.layers.map(descriptorJson),
    ...(input.subject ? { subject: descriptorJson(input.subject) } : {}),
    ...(input.annotations && Object.keys(input.annotations).length > 0 ? { annotations: sortedRecord(input.annotations) } : {}),
  };
  const bytes = new Uint8Array(Buffer.from(JSON.stringify(json)));
  return { mediaType: MEDIA_TYPES.ociManifest, bytes, digest: sha256Digest(bytes), size: bytes.length };
}

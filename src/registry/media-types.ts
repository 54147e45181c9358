import { error } from '../core/diagnostic.js';
import { parseDigest, type Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** What we ask a registry for: indexes and image manifests, OCI and Docker v2 schema 2. */
export const MANIFEST_ACCEPT = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest].join(', ');

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly platform?: Platform;
  readonly urls?: readonly string[];
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ImageManifest {
  readonly kind: 'manifest';
  readonly mediaType: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  /** OCI 1.1 artifacts say what they are here. */
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ImageIndex {
  readonly kind: 'index';
  readonly mediaType: string;
  readonly manifests: readonly Descriptor[];
}

export type ParsedManifest = ImageManifest | ImageIndex;

function badManifest(what: string, why: string): Result<never> {
  return fail(
    error('bad-manifest', `${what}: ${why}`, {
      hint: 'the registry served a manifest that is not an OCI or Docker v2 schema 2 image manifest or index',
    }),
  );
}

function descriptor(value: unknown, where: string, what: string): Result<Descriptor> {
  if (typeof value !== 'object' || value === null) return badManifest(what, `${where} is not an object`);
  const v = value as Record<string, unknown>;
  const digest = typeof v['digest'] === 'string' ? parseDigest(v['digest']) : undefined;
  if (!digest) return badManifest(what, `${where}.digest is not a sha256 digest`);
  if (typeof v['size'] !== 'number' || !Number.isSafeInteger(v['size']) || v['size'] < 0) {
    return badManifest(what, `${where}.size is not a byte count`);
  }
  if (typeof v['mediaType'] !== 'string') return badManifest(what, `${where}.mediaType is missing`);
  let platform: Platform | undefined;
  const p = v['platform'] as Record<string, unknown> | undefined;
  if (p && typeof p === 'object' && typeof p['os'] === 'string' && typeof p['architecture'] === 'string') {
    platform = { os: p['os'], architecture: p['architecture'], ...(typeof p['variant'] === 'string' ? { variant: p['variant'] } : {}) };
  }
  const urls = Array.isArray(v['urls']) ? v['urls'].filter((u): u is string => typeof u === 'string') : undefined;
  return ok({
    mediaType: v['mediaType'],
    digest,
    size: v['size'],
    ...(platform ? { platform } : {}),
    ...(urls ? { urls } : {}),
    ...(v['annotations'] && typeof v['annotations'] === 'object' ? { annotations: v['annotations'] as Record<string, string> } : {}),
  });
}

/** A JSON object whose values are all strings (annotations), else undefined. */
function stringRecord(value: unknown): Record<string, string> | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return Object.values(value).every((v) => typeof v === 'string') ? (value as Record<string, string>) : undefined;
}

/**
 * Parses manifest bytes. `contentType` (the response header) wins over the `mediaType` field;
 * without either, the shape decides (`manifests` → index, `layers` → image manifest).
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined, what: string): Result<ParsedManifest> {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return badManifest(what, 'it is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return badManifest(what, 'it is not a JSON object');
  const m = json as Record<string, unknown>;
  const ct = contentType?.split(';')[0]?.trim();
  const declared = typeof m['mediaType'] === 'string' ? m['mediaType'] : undefined;
  let mediaType = ct && ct !== 'application/json' && ct !== 'text/plain' ? ct : (declared ?? '');
  if (mediaType === MEDIA_TYPES.dockerSchema1 || mediaType === MEDIA_TYPES.dockerSchema1Signed || m['schemaVersion'] === 1) {
    return fail(
      error('unsupported-manifest', `${what}: Docker schema 1 manifests are not supported`, {
        hint: 'push the image again with a current Docker or skopeo (schema 2 or OCI)',
      }),
    );
  }
  if (mediaType === '') mediaType = Array.isArray(m['manifests']) ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.ociManifest;
  if (m['schemaVersion'] !== 2) return badManifest(what, 'schemaVersion is not 2');

  if (mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerList) {
    if (!Array.isArray(m['manifests'])) return badManifest(what, 'an index needs a manifests list');
    const manifests: Descriptor[] = [];
    for (const [i, d] of m['manifests'].entries()) {
      const r = descriptor(d, `manifests[${i}]`, what);
      if (!r.ok) return r;
      manifests.push(r.value);
    }
    return ok({ kind: 'index', mediaType, manifests });
  }
  if (mediaType === MEDIA_TYPES.ociManifest || mediaType === MEDIA_TYPES.dockerManifest) {
    const config = descriptor(m['config'], 'config', what);
    if (!config.ok) return config;
    if (!Array.isArray(m['layers'])) return badManifest(what, 'an image manifest needs a layers list');
    const layers: Descriptor[] = [];
    for (const [i, d] of m['layers'].entries()) {
      const r = descriptor(d, `layers[${i}]`, what);
      if (!r.ok) return r;
      layers.push(r.value);
    }
    return ok({
      kind: 'manifest',
      mediaType,
      config: config.value,
      layers,
      ...(typeof m['artifactType'] === 'string' ? { artifactType: m['artifactType'] } : {}),
      ...(stringRecord(m['annotations']) ? { annotations: stringRecord(m['annotations']) as Record<string, string> } : {}),
    });
  }
  return fail(
    error('unsupported-manifest', `${what}: unsupported manifest media type '${mediaType}'`, {
      hint: `supported: ${MANIFEST_ACCEPT}`,
    }),
  );
}

import { open, readFile, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { parseDigest, sha256Digest, type Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';
import { runCommand } from '../core/run-command.js';
import { toolFailure } from '../image/tool-failure.js';
import type { LayerCompression } from '../layers/layer-compression.js';
import { unpackLayer, unpackWarnings, type UnpackedLayer } from '../layers/unpack-layer.js';
import type { Store } from '../store/store.js';
import type { SourceSpec } from './build-source.js';
import { imageConfigFromOci } from './image-config.js';

export interface OciSourceSpec {
  readonly kind: 'oci' | 'oci-archive' | 'docker-archive';
  /** The layout folder, or the archive file. */
  readonly path: string;
  /** `oci:DIR:TAG`: the `org.opencontainers.image.ref.name` to pick. */
  readonly tag?: string;
}

interface LayerRef {
  readonly file: string;
  readonly diffId: Digest;
  readonly mediaType?: string;
  readonly compression?: LayerCompression;
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

function bad(spec: OciSourceSpec, message: string, hint?: string): Diagnostic {
  return error('bad-image-layout', `${spec.kind}:${spec.path}: ${message}`, hint ? { hint } : {});
}

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, 'utf8')) as unknown;
}

/** Gzip or plain tar, by the first bytes (docker-archive layers carry no media type). */
async function sniffCompression(path: string): Promise<LayerCompression> {
  const h = await open(path, 'r');
  try {
    const b = Buffer.alloc(4);
    await h.read(b, 0, 4, 0);
    if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'none';
  } finally {
    await h.close();
  }
}

/** Reads an OCI image layout (index.json, blobs/sha256): the manifest to use, its config and layers. */
async function readLayout(dir: string, spec: OciSourceSpec): Promise<Result<{ key: unknown; config: unknown; layers: LayerRef[] }, Diagnostic>> {
  const blob = (d: Digest) => join(dir, 'blobs', 'sha256', d.slice('sha256:'.length));
  let index: { manifests?: Array<{ digest: string; mediaType?: string; annotations?: Record<string, string>; platform?: { os?: string; architecture?: string } }> };
  try {
    index = (await readJson(join(dir, 'index.json'))) as typeof index;
  } catch (e) {
    return fail(bad(spec, `no readable index.json (${(e as Error).message})`, 'an OCI image layout has index.json, oci-layout and blobs/sha256/'));
  }
  let entries = index.manifests ?? [];
  if (spec.tag !== undefined) {
    entries = entries.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === spec.tag);
    if (entries.length === 0) {
      const tags = (index.manifests ?? []).map((m) => m.annotations?.['org.opencontainers.image.ref.name']).filter(Boolean);
      return fail(bad(spec, `no image tagged '${spec.tag}'`, tags.length > 0 ? `tags in the layout: ${tags.join(', ')}` : 'the layout has no tags; leave the tag out'));
    }
  }
  if (entries.length !== 1) return fail(bad(spec, `${entries.length} images in the layout`, 'name one with oci:DIR:TAG'));
  let entry = entries[0]!;
  for (let depth = 0; INDEX_TYPES.has(entry.mediaType ?? '') && depth < 4; depth++) {
    const d = parseDigest(entry.digest);
    if (!d) return fail(bad(spec, `invalid digest '${entry.digest}'`));
    const nested = (await readJson(blob(d))) as typeof index;
    const pick = (nested.manifests ?? []).find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64') ?? nested.manifests?.[0];
    if (!pick) return fail(bad(spec, 'an empty image index'));
    entry = pick;
  }
  const manifestDigest = parseDigest(entry.digest);
  if (!manifestDigest) return fail(bad(spec, `invalid digest '${entry.digest}'`));
  const manifestBytes = await readFile(blob(manifestDigest)).catch(() => undefined);
  if (!manifestBytes) return fail(bad(spec, `missing manifest blob ${manifestDigest}`));
  if (sha256Digest(manifestBytes) !== manifestDigest) return fail(bad(spec, `manifest blob ${manifestDigest} does not match its digest`));
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as { config?: { digest: string }; layers?: Array<{ digest: string; mediaType: string }> };
  const configDigest = parseDigest(manifest.config?.digest ?? '');
  if (!configDigest) return fail(bad(spec, 'the manifest names no config'));
  const configBytes = await readFile(blob(configDigest)).catch(() => undefined);
  if (!configBytes || sha256Digest(configBytes) !== configDigest) return fail(bad(spec, `config blob ${configDigest} is missing or does not match its digest`));
  const config = JSON.parse(configBytes.toString('utf8')) as { rootfs?: { diff_ids?: string[] } };
  const diffIds = config.rootfs?.diff_ids ?? [];
  const layers: LayerRef[] = [];
  for (const [i, l] of (manifest.layers ?? []).entries()) {
    const d = parseDigest(l.digest);
    const diffId = parseDigest(diffIds[i] ?? '');
    if (!d || !diffId) return fail(bad(spec, `layer ${i + 1} has no valid digest or diff_id`));
    layers.push({ file: blob(d), diffId, mediaType: l.mediaType });
  }
  return ok({ key: { manifest: manifestDigest }, config, layers });
}

/** Reads a `docker save` archive's manifest.json (already extracted into `dir`). */
async function readDockerArchive(dir: string, spec: OciSourceSpec): Promise<Result<{ key: unknown; config: unknown; layers: LayerRef[] }, Diagnostic>> {
  let manifest: Array<{ Config: string; Layers: string[] }>;
  try {
    manifest = (await readJson(join(dir, 'manifest.json'))) as typeof manifest;
  } catch (e) {
    return fail(bad(spec, `no readable manifest.json (${(e as Error).message})`, "a 'docker save' archive has manifest.json at its top"));
  }
  if (!Array.isArray(manifest) || manifest.length !== 1) return fail(bad(spec, `${Array.isArray(manifest) ? manifest.length : 0} images in the archive`, 'save one image per archive'));
  const m = manifest[0]!;
  const configBytes = await readFile(join(dir, m.Config));
  const config = JSON.parse(configBytes.toString('utf8')) as { rootfs?: { diff_ids?: string[] } };
  const diffIds = config.rootfs?.diff_ids ?? [];
  const layers: LayerRef[] = [];
  for (const [i, file] of m.Layers.entries()) {
    const diffId = parseDigest(diffIds[i] ?? '');
    if (!diffId) return fail(bad(spec, `layer ${i + 1} has no diff_id in the config`));
    const abs = join(dir, file);
    layers.push({ file: abs, diffId, compression: await sniffCompression(abs) });
  }
  return ok({ key: { config: sha256Digest(configBytes) }, config, layers });
}

/**
 * `oci:DIR[:TAG]`, `oci-archive:FILE` and `docker-archive:FILE` sources: layers unpacked into the
 * store in overlay format (verified against the config's diff_ids), keyed by the manifest digest
 * (or, for docker-archive, the config digest).
 */
export async function ociSource(spec: OciSourceSpec, options: { store: Store; signal?: AbortSignal }): Promise<Result<SourceSpec, Diagnostic>> {
  let tmp: string | undefined;
  try {
    let dir = spec.path;
    if (spec.kind !== 'oci') {
      tmp = await options.store.makeTempDir('archive');
      await mkdir(tmp, { recursive: true });
      const r = await runCommand('tar', ['-x', '--no-same-owner', '-f', spec.path, '-C', tmp], options.signal ? { signal: options.signal } : {});
      const failure = toolFailure('tar', `reading ${spec.kind}:${spec.path}`, r);
      if (failure) return fail({ ...failure, hint: 'is it a tar archive of an image?' });
      dir = tmp;
    }
    const read = spec.kind === 'docker-archive' ? await readDockerArchive(dir, spec) : await readLayout(dir, spec);
    if (!read.ok) return read;
    const unpacked: UnpackedLayer[] = [];
    for (const layer of read.value.layers) {
      const r = await unpackLayer({
        source: layer.file,
        ...(layer.mediaType !== undefined ? { mediaType: layer.mediaType } : { compression: layer.compression ?? 'none' }),
        expectedDiffId: layer.diffId,
        destination: options.store.layerPath(layer.diffId),
        tmpDir: options.store.tmpDir,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (!r.ok) return r;
      unpacked.push(r.value);
    }
    const description = `${spec.kind}:${spec.path}${spec.tag !== undefined ? `:${spec.tag}` : ''}`;
    // What unpacking in a user namespace changed (owners folded to 0 in single-id mode), said as for a registry source.
    const warnings = unpackWarnings(unpacked, description);
    return ok({
      kind: 'layers',
      key: read.value.key,
      layers: read.value.layers.map((l) => options.store.layerPath(l.diffId)).reverse(),
      config: imageConfigFromOci(read.value.config),
      description,
      ...(warnings.length > 0 ? { warnings } : {}),
    });
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

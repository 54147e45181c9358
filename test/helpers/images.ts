/**
 * Test images built from scratch (tar-stream + zlib), pushed to the test registry. Reused by
 * the registry, layers and build-engine tests.
 */
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { sha256Digest, type Digest } from '../../src/core/digest.js';
import { MEDIA_TYPES, type Platform } from '../../src/registry/media-types.js';
import { parseReference, type ImageReference } from '../../src/registry/reference.js';
import { pushBlob, pushManifest, type PushOptions } from './registry-push.js';

export interface LayerEntry {
  /** Path inside the layer, without leading `/` (`bin/busybox`, `etc/.wh.passwd`). */
  readonly name: string;
  readonly type?: 'file' | 'directory' | 'symlink' | 'link';
  readonly content?: string | Uint8Array;
  readonly mode?: number;
  readonly linkname?: string;
  readonly uid?: number;
  readonly gid?: number;
}

export interface BuiltLayer {
  /** The uncompressed tar. */
  readonly tar: Buffer;
  /** The gzip-compressed tar, as pushed. */
  readonly gz: Buffer;
  /** sha256 of `gz`: the blob digest. */
  readonly digest: Digest;
  /** sha256 of `tar`: the diff_id. */
  readonly diffId: Digest;
  readonly size: number;
  readonly mediaType: string;
}

export interface BuiltImage {
  readonly layers: readonly BuiltLayer[];
  readonly config: Buffer;
  readonly configDigest: Digest;
  readonly manifest: Buffer;
  readonly manifestDigest: Digest;
  readonly mediaType: string;
  readonly platform: Platform;
}

export interface BuiltIndex {
  readonly bytes: Buffer;
  readonly digest: Digest;
  readonly mediaType: string;
  readonly images: readonly BuiltImage[];
}

const MTIME = new Date(1_700_000_000_000);

/** A deterministic tar of `entries` (in the order given), and its gzip. */
export async function tarLayer(entries: readonly LayerEntry[], options: { oci?: boolean } = {}): Promise<BuiltLayer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const body = type === 'file' ? Buffer.from(e.content ?? '') : undefined;
    await new Promise<void>((resolve, reject) => {
      pack.entry(
        {
          name: e.name,
          type,
          mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          mtime: MTIME,
          ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
          ...(body ? { size: body.length } : {}),
        },
        body ?? '',
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }
  pack.finalize();
  await done;
  const tarBytes = Buffer.concat(chunks);
  const gz = gzipSync(tarBytes, { level: 6 });
  return {
    tar: tarBytes,
    gz,
    digest: sha256Digest(gz),
    diffId: sha256Digest(tarBytes),
    size: gz.length,
    mediaType: options.oci === false ? MEDIA_TYPES.dockerLayerGzip : MEDIA_TYPES.ociLayerGzip,
  };
}

/** A single layer holding Debian's static busybox as /bin/busybox and /bin/sh → busybox. */
export async function busyboxLayer(): Promise<BuiltLayer> {
  const busybox = await readFile('/bin/busybox');
  return tarLayer([
    { name: 'bin', type: 'directory' },
    { name: 'bin/busybox', content: busybox, mode: 0o755 },
    { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
    { name: 'etc', type: 'directory' },
    { name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n' },
    { name: 'tmp', type: 'directory', mode: 0o1777 },
  ]);
}

/**
 * Three layers exercising whiteouts. After applying them the tree is THREE_LAYER_RESULT:
 *  1: etc/a, etc/b, data/x/old1, data/x/old2, data/keep
 *  2: etc/.wh.a (deletes etc/a), data/x/.wh..wh..opq (hides old1, old2), data/x/new
 *  3: hello.txt, etc/b replaced
 */
export async function threeLayers(): Promise<BuiltLayer[]> {
  return [
    await tarLayer([
      { name: 'etc', type: 'directory' },
      { name: 'etc/a', content: 'a1\n' },
      { name: 'etc/b', content: 'b1\n' },
      { name: 'data', type: 'directory' },
      { name: 'data/x', type: 'directory' },
      { name: 'data/x/old1', content: 'old1\n' },
      { name: 'data/x/old2', content: 'old2\n' },
      { name: 'data/keep', content: 'keep\n' },
    ]),
    await tarLayer([
      { name: 'etc', type: 'directory' },
      { name: 'etc/.wh.a', content: '' },
      { name: 'data', type: 'directory' },
      { name: 'data/x', type: 'directory' },
      { name: 'data/x/.wh..wh..opq', content: '' },
      { name: 'data/x/new', content: 'new\n' },
    ]),
    await tarLayer([
      { name: 'hello.txt', content: 'hello from layer 3\n' },
      { name: 'etc', type: 'directory' },
      { name: 'etc/b', content: 'b3\n' },
    ]),
  ];
}

/** The regular files of the three-layer image once applied: path → content. */
export const THREE_LAYER_RESULT: Readonly<Record<string, string>> = {
  'etc/b': 'b3\n',
  'data/keep': 'keep\n',
  'data/x/new': 'new\n',
  'hello.txt': 'hello from layer 3\n',
};

/** Config + manifest for `layers` (OCI media types by default, Docker v2 schema 2 with `docker: true`). */
export function buildImage(
  layers: readonly BuiltLayer[],
  options: { platform?: Platform; docker?: boolean; config?: Record<string, unknown> } = {},
): BuiltImage {
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const config = Buffer.from(
    JSON.stringify({
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant !== undefined ? { variant: platform.variant } : {}),
      created: '2023-11-14T22:13:20Z',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'], ...options.config },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created: '2023-11-14T22:13:20Z', created_by: 'test/helpers/images.ts' })),
    }),
  );
  const docker = options.docker === true;
  const mediaType = docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: docker ? MEDIA_TYPES.dockerConfig : MEDIA_TYPES.ociConfig, digest: sha256Digest(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: docker ? MEDIA_TYPES.dockerLayerGzip : l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
  return { layers, config, configDigest: sha256Digest(config), manifest, manifestDigest: sha256Digest(manifest), mediaType, platform };
}

export function buildIndex(images: readonly BuiltImage[], options: { docker?: boolean } = {}): BuiltIndex {
  const mediaType = options.docker ? MEDIA_TYPES.dockerList : MEDIA_TYPES.ociIndex;
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: images.map((i) => ({ mediaType: i.mediaType, digest: i.manifestDigest, size: i.manifest.length, platform: i.platform })),
    }),
  );
  return { bytes, digest: sha256Digest(bytes), mediaType, images };
}

function refOf(ref: ImageReference | string): ImageReference {
  if (typeof ref !== 'string') return ref;
  const r = parseReference(ref);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

/** Pushes layers, config and manifest; tags the manifest with the reference's tag. */
export async function pushImage(ref: ImageReference | string, image: BuiltImage, options: PushOptions & { tag?: boolean } = {}): Promise<Digest> {
  const r = refOf(ref);
  for (const l of image.layers) await pushBlob(r, l.gz, options);
  await pushBlob(r, image.config, options);
  const target = options.tag === false ? { ...r, tag: undefined } : r;
  const { tag: _t, ...untagged } = target;
  return pushManifest(target.tag === undefined ? untagged : target, image.manifest, image.mediaType, options);
}

/** Pushes every image of an index by digest, then the index under the reference's tag. */
export async function pushIndex(ref: ImageReference | string, index: BuiltIndex, options: PushOptions = {}): Promise<Digest> {
  const r = refOf(ref);
  for (const image of index.images) await pushImage(r, image, { ...options, tag: false });
  return pushManifest(r, index.bytes, index.mediaType, options);
}

/** busybox-static as a one-layer image. */
export async function busyboxImage(options: { platform?: Platform; docker?: boolean } = {}): Promise<BuiltImage> {
  return buildImage([await busyboxLayer()], options);
}

/** The three-layer whiteout image. */
export async function threeLayerImage(): Promise<BuiltImage> {
  return buildImage(await threeLayers());
}

/** An index with two platforms: linux/amd64 (busybox) and linux/arm64/v8 (a marker file). */
export async function twoPlatformIndex(): Promise<BuiltIndex> {
  const amd64 = await busyboxImage();
  const arm64 = buildImage([await tarLayer([{ name: 'platform.txt', content: 'linux/arm64/v8\n' }])], {
    platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
  });
  return buildIndex([amd64, arm64]);
}

import PQueue from 'p-queue';
import type { Digest } from '../core/digest.js';
import { error } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import type { Descriptor } from './media-types.js';
import { EMPTY_CONFIG, EMPTY_JSON, ociManifest, type OciManifestBytes } from './oci-manifest.js';
import { withDigest, type ImageReference } from './reference.js';
import type { BlobSource, PushedBlob, RegistryClient } from './registry-client.js';

/** A blob of the image: its bytes (or file), and how the manifest describes it. */
export interface PushBlobInput {
  readonly source: BlobSource;
  readonly mediaType: string;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  /** The caller found the blob in the repository just now (`blobExists`): it is not pushed, and `source` is not read. */
  readonly present?: boolean | undefined;
  /** Repositories of the same registry to mount this blob from (default the image's `mountFrom`). */
  readonly mountFrom?: readonly string[] | undefined;
}

export interface PushImageOptions {
  readonly client: RegistryClient;
  /** The config blob; default the OCI empty descriptor (`{}`), as artifacts have. */
  readonly config?: PushBlobInput | undefined;
  readonly layers: readonly PushBlobInput[];
  /** OCI 1.1 artifact type of the manifest. */
  readonly artifactType?: string | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  readonly subject?: Descriptor | undefined;
  /** Repositories of the same registry to mount blobs from before uploading them. */
  readonly mountFrom?: readonly string[] | undefined;
  /** `PATCH` chunk size in bytes; default one monolithic `PUT` per blob. */
  readonly chunkSize?: number | undefined;
  /** Concurrent blob pushes. Default 3. */
  readonly concurrency?: number | undefined;
  /** Each blob as it lands (exists, mounted or uploaded). */
  readonly onBlob?: ((blob: PushedBlob) => void) | undefined;
  readonly signal?: AbortSignal | undefined;
}

export interface PushedImage {
  /** The reference pinned to the manifest's digest. */
  readonly reference: ImageReference;
  readonly digest: Digest;
  readonly manifest: OciManifestBytes;
  /** The config first, then the layers, in manifest order. */
  readonly blobs: readonly PushedBlob[];
  /** Bytes sent for blobs (0 when the registry had them all). */
  readonly bytesSent: number;
}

const descriptorOf = (b: PushBlobInput): Descriptor => ({
  mediaType: b.mediaType,
  digest: b.source.digest,
  size: b.source.size,
  ...(b.annotations ? { annotations: b.annotations } : {}),
});

/**
 * Pushes an OCI image or artifact: every blob (config and layers, several at once, each checked
 * with `HEAD` and mounted when it can be, so nothing is uploaded twice), then the manifest under
 * the reference's tag (or by digest). The manifest goes up only when every blob is there.
 */
export async function pushImage(ref: ImageReference, options: PushImageOptions): Promise<Result<PushedImage>> {
  const { client, signal } = options;
  const config: PushBlobInput = options.config ?? { source: { ...EMPTY_CONFIG, bytes: EMPTY_JSON }, mediaType: EMPTY_CONFIG.mediaType };
  const inputs = [config, ...options.layers];
  const queue = new PQueue({ concurrency: Math.max(1, options.concurrency ?? 3) });
  const results = await Promise.all(
    inputs.map((input) =>
      queue.add(async () => {
        if (signal?.aborted) return undefined;
        if (input.present) {
          const blob: PushedBlob = { digest: input.source.digest, size: input.source.size, how: 'exists', bytesSent: 0 };
          options.onBlob?.(blob);
          return ok(blob);
        }
        const r = await client.pushBlob(ref, input.source, { mountFrom: input.mountFrom ?? options.mountFrom, chunkSize: options.chunkSize, signal });
        if (r.ok) options.onBlob?.(r.value);
        return r;
      }),
    ),
  );
  const blobs: PushedBlob[] = [];
  for (const r of results) {
    if (r === undefined) return fail(error('interrupted', 'interrupted', { hint: 'run the command again to continue' }));
    if (!r.ok) return r;
    blobs.push(r.value);
  }
  const manifest = ociManifest({
    config: descriptorOf(config),
    layers: options.layers.map(descriptorOf),
    artifactType: options.artifactType,
    annotations: options.annotations,
    subject: options.subject,
  });
  const put = await client.pushManifest(ref, manifest.bytes, { mediaType: manifest.mediaType, signal });
  if (!put.ok) return put;
  return ok({
    reference: withDigest(ref, manifest.digest),
    digest: manifest.digest,
    manifest,
    blobs,
    bytesSent: blobs.reduce((n, b) => n + b.bytesSent, 0),
  });
}

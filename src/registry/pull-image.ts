import PQueue from 'p-queue';
import { error } from '../core/diagnostic.js';
import { parseDigest, type Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';
import type { Store } from '../store/store.js';
import type { Descriptor, ImageManifest, Platform } from './media-types.js';
import { formatPlatform } from './platform.js';
import { formatReference, type ImageReference } from './reference.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';
import type { RegistryEventListener } from './registry-events.js';

export interface PulledLayer {
  /** The compressed blob's digest (the store path is `store.blobPath(digest)`). */
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
  /** The uncompressed tar's digest, from the config's `rootfs.diff_ids` (the key of `store.layerPath`). */
  readonly diffId: Digest;
}

export interface PulledImage {
  /** The reference pinned to the image manifest digest. */
  readonly reference: ImageReference;
  /** The image manifest digest (for the chosen platform). */
  readonly digest: Digest;
  /** The index digest, when the reference named a multi-platform index. */
  readonly indexDigest?: Digest;
  readonly platform: Platform;
  readonly manifest: ImageManifest;
  readonly configDigest: Digest;
  /** The image config JSON (Env, Entrypoint, Cmd, Labels, rootfs...). */
  readonly config: Readonly<Record<string, unknown>>;
  readonly layers: readonly PulledLayer[];
  /** Bytes fetched over the network for blobs in this pull (0 when everything was cached). */
  readonly downloadedBytes: number;
  /** Blobs already in the store. */
  readonly cachedBlobs: number;
}

export interface PullImageOptions {
  readonly store: Store;
  /** A client to reuse (its token cache and in-flight downloads); otherwise one is made from `clientOptions`. */
  readonly client?: RegistryClient;
  readonly clientOptions?: RegistryClientOptions;
  /** Default linux/amd64. */
  readonly platform?: Platform;
  /** Concurrent layer downloads. Default 6. */
  readonly concurrency?: number;
  readonly onEvent?: RegistryEventListener;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Resolves `ref` (tag → digest, index → platform manifest), downloads and verifies the config
 * and every layer into the store. A digest-pinned reference whose blobs are all in the store needs
 * no network at all.
 */
// Long on purpose: resolve, config, layers, each followed by its result check, in the order a
// reader follows a pull.
export async function pullImage(ref: ImageReference, options: PullImageOptions): Promise<Result<PulledImage>> {
  const client = options.client ?? new RegistryClient({ ...options.clientOptions });
  const unsubscribe = options.onEvent ? client.subscribe(options.onEvent) : () => undefined;
  const { store, signal } = options;
  try {
    const resolved = await client.fetchManifest(ref, { store, signal, ...(options.platform ? { platform: options.platform } : {}) });
    if (!resolved.ok) return resolved;
    const m = resolved.value;
    options.onEvent?.({
      type: 'manifest-resolved',
      reference: formatReference(ref),
      digest: m.digest,
      ...(m.index ? { indexDigest: m.index.digest } : {}),
      platform: formatPlatform(m.platform),
      cached: m.cached,
    });

    let downloadedBytes = 0;
    let cachedBlobs = 0;
    const fetch = async (d: Pick<Descriptor, 'digest' | 'size'>) => {
      const r = await client.fetchBlob(ref, d, { store, signal });
      if (r.ok) {
        if (r.value.written) downloadedBytes += r.value.size;
        else cachedBlobs++;
      }
      return r;
    };

    const cfg = await fetch(m.manifest.config);
    if (!cfg.ok) return cfg;
    const stream = await store.blobs.open(m.manifest.config.digest, { signal });
    let config: Record<string, unknown>;
    try {
      const chunks: Buffer[] = [];
      for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
      config = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      return fail(error('bad-image-config', `${formatReference(ref)}: the image config ${m.manifest.config.digest} is not JSON`));
    }
    const rootfs = config['rootfs'] as { diff_ids?: unknown } | undefined;
    const diffIds = Array.isArray(rootfs?.diff_ids) ? rootfs.diff_ids.map((x) => (typeof x === 'string' ? parseDigest(x) : undefined)) : [];
    if (diffIds.length !== m.manifest.layers.length || diffIds.some((d) => d === undefined)) {
      return fail(
        error('bad-image-config', `${formatReference(ref)}: the image config lists ${diffIds.length} diff_ids for ${m.manifest.layers.length} layers`, {
          hint: 'the image is malformed; rebuild and push it again',
        }),
      );
    }

    const queue = new PQueue({ concurrency: options.concurrency ?? 6 });
    const controller = new AbortController();
    const inner = signal ? AbortSignal.any([signal, controller.signal]) : controller.signal;
    const results = await Promise.all(
      m.manifest.layers.map((layer) =>
        queue.add(async () => {
          if (inner.aborted) return undefined;
          const r = await client.fetchBlob(ref, layer, { store, signal: inner });
          if (r.ok) {
            if (r.value.written) downloadedBytes += r.value.size;
            else cachedBlobs++;
          } else controller.abort(); // stop the others: the pull has failed
          return r;
        }),
      ),
    );
    signal?.throwIfAborted();
    for (const r of results) if (r && !r.ok && r.error.reason !== 'interrupted') return r;
    for (const r of results) if (!r || !r.ok) return fail(error('interrupted', 'interrupted', { hint: 'run the command again to continue' }));

    return ok({
      reference: m.reference,
      digest: m.digest,
      ...(m.index ? { indexDigest: m.index.digest } : {}),
      platform: m.platform,
      manifest: m.manifest,
      configDigest: m.manifest.config.digest,
      config,
      layers: m.manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: diffIds[i]! })),
      downloadedBytes,
      cachedBlobs,
    });
  } catch (e) {
    if (signal?.aborted) return fail(error('interrupted', 'interrupted', { hint: 'run the command again to continue' }));
    throw e;
  } finally {
    unsubscribe();
    if (!options.client) await client.close();
  }
}

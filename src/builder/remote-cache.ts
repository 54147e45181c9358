import { rm } from 'node:fs/promises';
import PQueue from 'p-queue';
import type { Diagnostic } from '../core/diagnostic.js';
import { parseDigest } from '../core/digest.js';
import { writeSnapshotTar, type SnapshotCompression } from '../layers/snapshot-tar.js';
import { unpackLayer, unpackWarnings } from '../layers/unpack-layer.js';
import { pushImage } from '../registry/push-image.js';
import { formatReference, type ImageReference } from '../registry/reference.js';
import type { RegistryClient } from '../registry/registry-client.js';
import type { Store } from '../store/store.js';

/** The `artifactType` of a step snapshot in a registry (README, "Sharing a step cache"). */
export const STEP_ARTIFACT_TYPE = 'application/vnd.orchestrator.step.v1';

/** The manifest annotations of a step artifact. */
export const STEP_ANNOTATIONS = {
  key: 'org.orchestrator.step.key',
  parent: 'org.orchestrator.step.parent',
  kind: 'org.orchestrator.step.kind',
  diffId: 'org.orchestrator.step.diffid',
  tool: 'org.orchestrator.tool.version',
} as const;

/** The tag of a step in a cache repository: `step-` and the key's hex (a valid tag: 69 characters). */
export function stepTag(key: string): string {
  return `step-${key.startsWith('sha256:') ? key.slice('sha256:'.length) : key}`;
}

/** What the remote cache reports; `where` is `REGISTRY/REPOSITORY`, never a credential. */
export type RemoteCacheEvent =
  /** One per repository and run: after it, the repository is left alone and steps build locally. */
  | { readonly type: 'remote-cache-warning'; readonly where: string; readonly message: string }
  | { readonly type: 'remote-cache-hit'; readonly key: string; readonly where: string; readonly bytes: number }
  | { readonly type: 'remote-cache-pushed'; readonly key: string; readonly where: string; readonly bytes: number; readonly uploaded: boolean };

/** What the remote cache did in a run, for the summary. */
export interface RemoteCacheSummary {
  /** Steps pulled from a `from` repository, and their compressed bytes. */
  readonly pulled: number;
  readonly pulledBytes: number;
  /** Steps now in the `to` repositories (uploaded or already there), and the bytes uploaded. */
  readonly pushed: number;
  readonly pushedBytes: number;
  /** Pushes given up (each repository warned about once). */
  readonly pushFailed: number;
  /** Repositories given up on in this run. */
  readonly warnings: number;
}

export interface RemoteStepCacheOptions {
  /** Made when first needed (the CLI loads the HTTP stack only then). */
  readonly client: () => Promise<RegistryClient>;
  readonly store: Store;
  /** Repositories asked for steps not in the store, in order. */
  readonly from: readonly ImageReference[];
  /** Repositories every step of the run goes to. */
  readonly to: readonly ImageReference[];
  readonly toolVersion: string;
  /** Default gzip. */
  readonly compression?: SnapshotCompression;
  readonly onEvent?: (event: RemoteCacheEvent) => void;
  readonly signal: AbortSignal;
}

export interface StepToPush {
  readonly key: string;
  readonly parent: string | null;
  readonly kind: string;
  /** The snapshot folder in the store. */
  readonly snapshot: string;
}

/**
 * The step cache in OCI registries (docs/ARCHITECTURE.md, Remote step cache). `fetch` asks each
 * `from` repository for a step's tag; a hit is checked (our artifactType, the key in its
 * annotations, one layer), its blob pulled and verified, and unpacked into the store's snapshot
 * folder by rename, with its diffid checked: exactly what a local build publishes. `push` queues
 * a step for every `to` repository, alongside the build; `settle` waits for the queue.
 *
 * The cache is an optimisation, never a failure: any trouble with a repository (unreachable,
 * 401/403, a corrupt or missing blob, a bad manifest) is one warning, after which that repository
 * is left alone for the run and steps build locally. Nothing unverified reaches the store.
 */
export class RemoteStepCache {
  readonly #o: RemoteStepCacheOptions;
  /** Repositories given up on in this run (warned once). */
  readonly #broken = new Set<string>();
  readonly #queue = new PQueue({ concurrency: 2 });
  readonly #pushed = new Set<string>();
  #summary = { pulled: 0, pulledBytes: 0, pushed: 0, pushedBytes: 0, pushFailed: 0 };

  constructor(options: RemoteStepCacheOptions) {
    this.#o = options;
  }

  get pushing(): boolean {
    return this.#o.to.length > 0;
  }

  #where(repo: ImageReference): string {
    return `${repo.registry}/${repo.repository}`;
  }

  #warn(repo: ImageReference, message: string): void {
    const where = this.#where(repo);
    if (this.#broken.has(where)) return;
    this.#broken.add(where);
    this.#o.onEvent?.({ type: 'remote-cache-warning', where, message });
  }

  #ref(repo: ImageReference, key: string): ImageReference {
    const { digest: _digest, ...rest } = repo;
    return { ...rest, tag: stepTag(key) };
  }

  /**
   * The step's snapshot from the first `from` repository that has it, unpacked into
   * `store.snapshotPath(key)`; the bytes pulled and what unpacking it in a user namespace changed
   * (unpackWarnings, naming the step as `label`), or undefined (a miss, or a warning).
   */
  async fetch(
    key: string,
    options: { readonly signal: AbortSignal; readonly label?: string },
  ): Promise<{ readonly where: string; readonly bytes: number; readonly warnings?: readonly Diagnostic[] } | undefined> {
    for (const repo of this.#o.from) {
      if (this.#broken.has(this.#where(repo))) continue;
      const r = await this.#fetchFrom(repo, key, options.signal, options.label);
      if (options.signal.aborted) return undefined;
      if (r === 'miss') continue;
      if (typeof r === 'string') {
        this.#warn(repo, r);
        continue;
      }
      this.#summary.pulled += 1;
      this.#summary.pulledBytes += r.bytes;
      this.#o.onEvent?.({ type: 'remote-cache-hit', key, where: this.#where(repo), bytes: r.bytes });
      return { where: this.#where(repo), bytes: r.bytes, ...(r.warnings.length > 0 ? { warnings: r.warnings } : {}) };
    }
    return undefined;
  }

  /**
   * Whether a `from` repository has the step, without pulling it (`plan --remote`): the first
   * whose tag holds this step's artifact, or undefined. Trouble with a repository is its warning.
   */
  async has(key: string, options: { readonly signal: AbortSignal }): Promise<{ readonly where: string } | undefined> {
    for (const repo of this.#o.from) {
      if (this.#broken.has(this.#where(repo))) continue;
      const client = await this.#o.client();
      const got = await client.getManifest(this.#ref(repo, key), { signal: options.signal });
      if (options.signal.aborted) return undefined;
      if (!got.ok) {
        if (got.error.reason !== 'registry-manifest-not-found') this.#warn(repo, describe(got.error));
        continue;
      }
      const m = got.value.manifest;
      if (m.kind === 'manifest' && m.artifactType === STEP_ARTIFACT_TYPE && m.annotations?.[STEP_ANNOTATIONS.key] === key) return { where: this.#where(repo) };
    }
    return undefined;
  }

  /** A hit, `'miss'`, or why the repository is given up on. */
  async #fetchFrom(repo: ImageReference, key: string, signal: AbortSignal, label = `step ${key}`): Promise<{ bytes: number; warnings: Diagnostic[] } | 'miss' | string> {
    const { store } = this.#o;
    const client = await this.#o.client();
    const ref = this.#ref(repo, key);
    const got = await client.getManifest(ref, { signal });
    if (!got.ok) return got.error.reason === 'registry-manifest-not-found' ? 'miss' : describe(got.error);
    const m = got.value.manifest;
    const layer = m.kind === 'manifest' && m.layers.length === 1 ? m.layers[0] : undefined;
    const diffId = m.kind === 'manifest' ? parseDigest(m.annotations?.[STEP_ANNOTATIONS.diffId] ?? '') : undefined;
    if (m.kind !== 'manifest' || m.artifactType !== STEP_ARTIFACT_TYPE || m.annotations?.[STEP_ANNOTATIONS.key] !== key || !layer || !diffId) {
      return `${formatReference(ref)} is not this step's snapshot (another artifact type, key or layout); not used`;
    }
    const blob = await client.fetchBlob(ref, layer, { store, signal });
    if (!blob.ok) return describe(blob.error);
    try {
      const unpacked = await unpackLayer({
        source: blob.value.path,
        mediaType: layer.mediaType,
        expectedDiffId: diffId,
        layerDigest: layer.digest,
        destination: store.snapshotPath(key),
        tmpDir: store.tmpDir,
        signal,
      });
      if (!unpacked.ok) return describe(unpacked.error);
      // What unpacking in a user namespace changed (owners folded to 0 in single-id mode), said as for a source.
      return { bytes: blob.value.written ? layer.size : 0, warnings: unpackWarnings([unpacked.value], `${label} pulled from ${this.#where(repo)}`) };
    } finally {
      // The snapshot is the cache entry; its packed form is not kept twice.
      await rm(blob.value.path, { force: true });
    }
  }

  /** Queues a step that succeeded (built or found in the store) for every `to` repository, once a run. */
  push(step: StepToPush): void {
    if (this.#o.to.length === 0 || this.#pushed.has(step.key)) return;
    this.#pushed.add(step.key);
    void this.#queue.add(() => this.#push(step));
  }

  async #push(step: StepToPush): Promise<void> {
    const { store, signal } = this.#o;
    const client = await this.#o.client();
    const targets = this.#o.to.filter((repo) => !this.#broken.has(this.#where(repo)));
    if (targets.length === 0 || signal.aborted) return;
    // Already there (another machine, an earlier run): nothing to pack.
    const missing: ImageReference[] = [];
    for (const repo of targets) {
      const there = await client.getManifest(this.#ref(repo, step.key), { signal });
      if (there.ok && there.value.manifest.kind === 'manifest' && there.value.manifest.annotations?.[STEP_ANNOTATIONS.key] === step.key) {
        this.#summary.pushed += 1;
        this.#o.onEvent?.({ type: 'remote-cache-pushed', key: step.key, where: this.#where(repo), bytes: 0, uploaded: false });
      } else if (there.ok || there.error.reason === 'registry-manifest-not-found') missing.push(repo);
      else {
        this.#summary.pushFailed += 1;
        this.#warn(repo, describe(there.error));
      }
    }
    if (missing.length === 0) return;
    const file = store.tempPath(`${stepTag(step.key).slice(0, 17)}.tar`);
    try {
      const tar = await writeSnapshotTar({ folder: step.snapshot, output: file, compression: this.#o.compression ?? 'gzip', signal });
      if (!tar.ok) {
        for (const repo of missing) {
          this.#summary.pushFailed += 1;
          this.#warn(repo, describe(tar.error));
        }
        return;
      }
      for (const repo of missing) {
        const pushed = await pushImage(this.#ref(repo, step.key), {
          client,
          layers: [{ source: { digest: tar.value.digest, size: tar.value.size, path: file }, mediaType: tar.value.mediaType }],
          artifactType: STEP_ARTIFACT_TYPE,
          annotations: {
            [STEP_ANNOTATIONS.key]: step.key,
            [STEP_ANNOTATIONS.parent]: step.parent ?? '',
            [STEP_ANNOTATIONS.kind]: step.kind,
            [STEP_ANNOTATIONS.diffId]: tar.value.diffId,
            [STEP_ANNOTATIONS.tool]: this.#o.toolVersion,
          },
          signal,
        });
        if (!pushed.ok) {
          this.#summary.pushFailed += 1;
          this.#warn(repo, describe(pushed.error));
          continue;
        }
        this.#summary.pushed += 1;
        this.#summary.pushedBytes += pushed.value.bytesSent;
        this.#o.onEvent?.({ type: 'remote-cache-pushed', key: step.key, where: this.#where(repo), bytes: pushed.value.bytesSent, uploaded: pushed.value.bytesSent > 0 });
      }
    } finally {
      await rm(file, { force: true });
    }
  }

  /** Waits for the queued pushes; what the cache did in the run. */
  async settle(): Promise<RemoteCacheSummary> {
    await this.#queue.onIdle();
    return { ...this.#summary, warnings: this.#broken.size };
  }
}

function describe(d: Diagnostic): string {
  return `${d.message}${d.reason === 'digest-mismatch' || d.reason === 'diffid-mismatch' ? ' (nothing of it was used)' : ''}`;
}

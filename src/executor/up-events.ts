import type { BuildEvent } from '../builder/build-events.js';
import type { RemoteCacheSummary } from '../builder/remote-cache.js';
import type { Diagnostic } from '../core/diagnostic.js';
import type { Digest } from '../core/digest.js';
import type { StaleReason } from '../freshness/explain.js';

/** What `up` reports, besides the build events of each target. */
export type UpEvent =
  | BuildEvent
  | { readonly type: 'target-fresh'; readonly target: string }
  | { readonly type: 'target-kept'; readonly target: string; readonly changes: number }
  | { readonly type: 'target-stale'; readonly target: string; readonly reasons: readonly StaleReason[]; readonly dryRun: boolean }
  | { readonly type: 'target-started'; readonly target: string }
  | { readonly type: 'target-done'; readonly target: string; readonly ms: number; readonly stepsRun: number; readonly stepsCached: number; readonly key: string }
  | { readonly type: 'target-failed'; readonly target: string; readonly error: Diagnostic; readonly ms: number }
  | { readonly type: 'target-skipped'; readonly target: string; readonly because: string }
  | PushEvent
  /** `plan --remote`: a stale target whose steps were not probed (a dependency is rebuilt first, or its source failed). */
  | { readonly type: 'probe-skipped'; readonly target: string; readonly because: string }
  | { readonly type: 'run-done'; readonly summary: UpSummary };

/**
 * A target's `push:` (src/executor/push-outputs.ts). `destination` is `REG/REPO:TAG` as the
 * registry names it (never a credential). `push-planned` is what a dry run (`plan`, `up -n`)
 * would push, and why; a failed push is the target's `target-failed`.
 */
export type PushEvent =
  | { readonly type: 'push-planned'; readonly target: string; readonly destination: string; readonly why: string }
  | { readonly type: 'push-started'; readonly target: string; readonly destination: string; readonly why: string }
  /** One blob of the image: `uploaded` (its bytes sent), `exists` (the registry had it: a HEAD) or `mounted` (from another repository). */
  | { readonly type: 'push-blob'; readonly target: string; readonly destination: string; readonly digest: Digest; readonly size: number; readonly how: 'uploaded' | 'exists' | 'mounted' }
  | {
      readonly type: 'push-done';
      readonly target: string;
      readonly destination: string;
      /** The manifest digest the registry has under the tag. */
      readonly digest: Digest;
      readonly layers: number;
      /** Blobs (layers and config) uploaded, and those the registry had or mounted. */
      readonly blobsUploaded: number;
      readonly blobsPresent: number;
      readonly bytesSent: number;
      readonly ms: number;
    };

export interface UpSummary {
  readonly built: number;
  readonly fresh: number;
  readonly failed: number;
  readonly skipped: number;
  /** Steps reused from the cache by the targets that were built. */
  readonly stepsCached: number;
  /** Images pushed to a target's `push:` destinations, and the bytes sent for them. */
  readonly pushed: number;
  readonly pushedBytes: number;
  readonly ms: number;
  readonly interrupted: boolean;
  /** Answered from the no-op witness of the last all-fresh run (src/freshness/witness.ts): nothing it read has changed. */
  readonly fromWitness?: boolean;
  /** What the remote step cache pulled and pushed (with `--cache-from`/`--cache-to` or `cache.remote`). */
  readonly remoteCache?: RemoteCacheSummary;
}

export type UpEventListener = (event: UpEvent) => void;

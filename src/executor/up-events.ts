import type { BuildEvent } from '../builder/build-events.js';
import type { RemoteCacheSummary } from '../builder/remote-cache.js';
import type { Diagnostic } from '../core/diagnostic.js';
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
  | { readonly type: 'run-done'; readonly summary: UpSummary };

export interface UpSummary {
  readonly built: number;
  readonly fresh: number;
  readonly failed: number;
  readonly skipped: number;
  /** Steps reused from the cache by the targets that were built. */
  readonly stepsCached: number;
  readonly ms: number;
  readonly interrupted: boolean;
  /** Answered from the no-op witness of the last all-fresh run (src/freshness/witness.ts): nothing it read has changed. */
  readonly fromWitness?: boolean;
  /** What the remote step cache pulled and pushed (with `--cache-from`/`--cache-to` or `cache.remote`). */
  readonly remoteCache?: RemoteCacheSummary;
}

export type UpEventListener = (event: UpEvent) => void;

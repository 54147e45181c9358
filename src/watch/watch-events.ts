import type { Diagnostic } from '../core/diagnostic.js';
import type { UpEvent } from '../executor/up-events.js';

/**
 * What `up --watch` reports: the events of each iteration's `up`, and the watcher's own. Paths are
 * as they are shown (relative to the working folder when below it).
 */
export type WatchEvent =
  | UpEvent
  /** The manifest or a recipe has problems (`valid: false`: nothing is built until they are fixed). */
  | { readonly type: 'watch-diagnostics'; readonly diagnostics: readonly Diagnostic[]; readonly valid: boolean }
  /** An iteration starts: these inputs changed; these targets (and nothing else) are checked and rebuilt if stale. */
  | { readonly type: 'watch-changes'; readonly paths: readonly string[]; readonly targets: readonly string[] }
  /** Inputs of targets still building changed: the running build is stopped, and runs again when it has settled. */
  | { readonly type: 'watch-restart'; readonly paths: readonly string[]; readonly targets: readonly string[] }
  /** The changes touched nothing the requested targets are built from. */
  | { readonly type: 'watch-nothing'; readonly paths: readonly string[] }
  /** Idle: waiting for the next change. */
  | { readonly type: 'watch-waiting'; readonly watched: number }
  /** Stopped (Ctrl-C): the watcher is closed and the last build has settled. */
  | { readonly type: 'watch-stopped' };

export type WatchEventListener = (event: WatchEvent) => void;

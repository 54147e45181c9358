import { watch, type FSWatcher } from 'chokidar';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { unreachable } from '../core/unreachable.js';
import { runUp, type UpOptions } from '../executor/run-up.js';
import type { UpEvent } from '../executor/up-events.js';
import { expandSelection } from '../graph/expand-selection.js';
import { TargetGraph } from '../graph/target-graph.js';
import { displayPath, loadProject } from '../manifest/load-project.js';
import { loadRecipes } from '../manifest/load-recipes.js';
import type { Project } from '../manifest/project.js';
import type { Recipe } from '../recipe/model.js';
import type { WatchEventListener } from './watch-events.js';
import { WatchSet } from './watch-set.js';

export interface WatchOptions {
  /** The working folder; `dir` and `file` are as for loadProject (-C, -f). */
  readonly cwd: string;
  readonly dir?: string | undefined;
  readonly file?: string | undefined;
  /** Targets and groups as named on the command line (none: the default group). */
  readonly selection: readonly string[];
  /** The settings of every iteration's `up`. */
  readonly up: Omit<UpOptions, 'project' | 'recipes' | 'order' | 'requested' | 'dryRun' | 'onEvent' | 'signal'>;
  /** Quiet time after the last change before a build starts (trailing debounce). */
  readonly debounceMs: number;
  readonly onEvent: WatchEventListener;
  /** Ctrl-C: stop the running build, close the watcher, return. */
  readonly signal: AbortSignal;
}

export interface WatchSummary {
  /** Iterations run, the first build included. */
  readonly iterations: number;
}

/** A manifest with its recipes that loaded without errors, and what to build of it. */
interface Plan {
  readonly project: Project;
  readonly recipes: ReadonlyMap<string, Recipe>;
  /** The requested targets and their dependencies, in build order. */
  readonly order: readonly string[];
  readonly requested: ReadonlySet<string>;
  readonly graph: TargetGraph;
  readonly watch: WatchSet;
}

/** The result of reading the manifest and recipes as they are now. */
interface Loaded {
  readonly plan?: Plan;
  /** What to watch when there is no plan: the broken version's manifest and recipe files. */
  readonly watch?: WatchSet;
  readonly diagnostics: readonly Diagnostic[];
  /** The manifest itself did not load, or the selection names nothing in it. */
  readonly fatal: boolean;
}

/** One `up` run of the loop. */
interface Iteration {
  readonly controller: AbortController;
  /** Targets not fresh, built, failed or skipped yet. */
  readonly unfinished: Set<string>;
  /** Targets that ended fresh, built or kept. */
  readonly succeeded: Set<string>;
  /** Settles when runUp has returned: no step, mount or child process of it is left. */
  readonly done: Promise<void>;
}

/**
 * The watcher's states (wireit's watcher has the same shape, plus `loading` here):
 *
 * ```
 *              change                 debounce ms quiet              plan ok
 *   watching ─────────► debouncing ─────────────────────► loading ─────────► running ── done ──► watching
 *      ▲                  ▲   │ change: add it,              │                 │
 *      │                  │   └ restart the timer             │ broken manifest │ change
 *      │                  │                                   │ or recipe,      ▼
 *      ├──────────────────│───────────────────────────────────┘ or no target  queued ── more changes: add them
 *      │                  └──────── done (aborted or not), settled ─────────────┘
 *   any state ── Ctrl-C ──► stopping (the run is aborted; wait until it settles) ──► stopped
 * ```
 *
 * - `watching`: idle, nothing pending.
 * - `debouncing`: changes seen; the timer restarts on each one and fires `debounceMs` after the
 *   last (a trailing debounce), so a burst of saves makes one run.
 * - `loading`: the manifest and recipes are read again (cheap; a change to either is seen at
 *   once). Errors are printed and the loop goes back to watching, the broken files included, until
 *   they are fixed. Changes that come meanwhile are kept for the next round.
 * - `running`: an `up` run is building the changed targets and those built from them.
 * - `queued`: an `up` run is building and changes came in. If a change touches a target of the run
 *   that has not finished (its inputs, or the inputs of a target it is built from), the run is
 *   aborted (runUp turns that into "interrupted" and cleans up: no mounts, temp folders or
 *   processes are left); otherwise it goes on. When it has settled, the changes are debounced and
 *   the next run starts.
 * - `stopping`: Ctrl-C during a load or a run: the run is aborted, the loop ends once it settled.
 * - `stopped`: the watcher is closed; runWatch returns.
 */
type WatchState =
  | { readonly kind: 'watching' }
  | { readonly kind: 'debouncing'; readonly changed: Set<string>; timer: NodeJS.Timeout }
  | { readonly kind: 'loading'; readonly changed: Set<string> }
  | { readonly kind: 'running'; readonly iteration: Iteration }
  | { readonly kind: 'queued'; readonly iteration: Iteration; readonly changed: Set<string> }
  | { readonly kind: 'stopping'; readonly iteration?: Iteration }
  | { readonly kind: 'stopped' };

async function loadPlan(options: WatchOptions): Promise<Loaded> {
  const { project, diagnostics } = await loadProject({ cwd: options.cwd, dir: options.dir, file: options.file });
  if (!project) return { diagnostics, fatal: true };
  const recipes = loadRecipes(project, { cwd: options.cwd });
  const all = [...diagnostics, ...recipes.diagnostics];
  const selection = expandSelection(project, options.selection);
  const storeDir = options.up.store.root;
  if (!selection.ok) return { diagnostics: [...all, ...selection.error], fatal: true, watch: WatchSet.of({ project, recipes: recipes.byTarget, targets: [], storeDir }) };
  const graph = TargetGraph.fromProject(project);
  const order = graph.buildOrder(selection.value);
  const watchSet = WatchSet.of({ project, recipes: recipes.byTarget, targets: order, storeDir });
  if (all.some((d) => d.severity === 'error')) return { diagnostics: all, fatal: false, watch: watchSet };
  return {
    plan: { project, recipes: recipes.byTarget, order, requested: new Set(selection.value), graph, watch: watchSet },
    diagnostics: all,
    fatal: false,
  };
}

/** `names` and every target built from them, transitively. */
function withDependents(graph: TargetGraph, names: Iterable<string>): Set<string> {
  const out = new Set<string>();
  const visit = (n: string): void => {
    if (out.has(n)) return;
    out.add(n);
    for (const d of graph.dependents(n)) visit(d);
  };
  for (const n of names) visit(n);
  return out;
}

/**
 * `orchestrator up --watch` (docs/ARCHITECTURE.md, Watch): builds the requested targets, then watches
 * exactly what their builds read (see WatchSet) and, after each burst of changes, builds again only
 * the targets whose inputs changed and those built from them, reusing every cached step. A change
 * during a build stops the work it makes stale and starts over once that has settled. A broken
 * manifest or recipe is reported and watched until fixed; a failing build is reported and the
 * previous outputs stay. Returns when `signal` is aborted, with nothing left running, or fails
 * at once when the manifest cannot be read at the start (bad usage).
 */
export async function runWatch(options: WatchOptions): Promise<Result<WatchSummary, readonly Diagnostic[]>> {
  const first = await loadPlan(options);
  if (first.fatal) return fail(first.diagnostics);
  if (options.signal.aborted) return ok({ iterations: 0 });
  const emit = options.onEvent;
  const shown = (paths: Iterable<string>) => [...paths].map((p) => displayPath(options.cwd, p));

  let plan: Plan | undefined = first.plan;
  /** What the watcher looks at: the plan's inputs, plus a broken version's while it is fixed. */
  let watching: WatchSet = first.plan ? first.plan.watch : first.watch!;
  /** Targets a change touched that have not been built since (a broken recipe, a failure). */
  const pending = new Set<string>();
  let iterations = 0;
  let state: WatchState = { kind: 'watching' };
  let finished!: () => void;
  const stopped = new Promise<void>((resolve) => (finished = resolve));

  const watcher: FSWatcher = watch(watching.paths(), {
    ignoreInitial: true,
    // A root folder's symlinks point into the image (`/usr/bin`), never at the host's files.
    followSymlinks: false,
    ignored: (path: string) => watching.isExcluded(path),
  });
  let warned = false;
  watcher.on('error', (e: unknown) => {
    // Typically the inotify limit (ENOSPC): say it once; the watch goes on with what it has.
    if (warned) return;
    warned = true;
    const message = `cannot watch every input: ${e instanceof Error ? e.message : String(e)}; some changes may be missed`;
    emit({ type: 'watch-diagnostics', diagnostics: [{ ...error('watch-failed', message, { hint: 'raise fs.inotify.max_user_watches, or watch fewer targets' }), severity: 'warning' }], valid: true });
  });
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));

  const syncWatcher = (next: WatchSet): void => {
    const before = new Set(watching.paths());
    watching = next;
    const after = next.paths();
    const added = after.filter((p) => !before.has(p));
    const removed = [...before].filter((p) => !after.includes(p));
    if (removed.length > 0) watcher.unwatch(removed);
    if (added.length > 0) watcher.add(added);
  };

  const waiting = (): void => {
    emit({ type: 'watch-waiting', watched: watching.paths().length });
  };

  /** The targets of the running iteration that a change to `paths` makes stale. */
  const touchedRunning = (iteration: Iteration, paths: Iterable<string>): string[] => {
    if (!plan) return [];
    const impact = watching.impact(paths);
    const touched = impact.manifest ? new Set(plan.order) : withDependents(plan.graph, impact.targets);
    return [...iteration.unfinished].filter((t) => touched.has(t));
  };

  /** Aborts the run when `paths` touch its unfinished targets. */
  const restartIfTouched = (iteration: Iteration, paths: readonly string[]): void => {
    if (iteration.controller.signal.aborted) return;
    const touched = touchedRunning(iteration, paths);
    if (touched.length === 0) return;
    emit({ type: 'watch-restart', paths: shown(paths), targets: touched });
    iteration.controller.abort(new Error('inputs changed'));
  };

  /** `loading`: reads the plan again, then starts a run of what the changes touched (all at first). */
  const load = async (changed: ReadonlySet<string> | undefined): Promise<void> => {
    const previous = watching;
    const loaded = changed === undefined ? first : await loadPlan(options);
    if (loaded.diagnostics.length > 0) emit({ type: 'watch-diagnostics', diagnostics: loaded.diagnostics, valid: loaded.plan !== undefined });
    const impact = changed === undefined ? undefined : (loaded.plan ? loaded.plan.watch.union(previous) : previous).impact(changed);
    if (impact) for (const t of impact.targets) pending.add(t);
    if (!loaded.plan) {
      // Keep the last good plan's inputs watched, and the broken version's, until it is fixed.
      const broken = loaded.watch;
      syncWatcher(broken && plan ? broken.union(plan.watch) : (broken ?? (plan ? plan.watch : watching)));
      if (impact?.manifest && plan) for (const t of plan.order) pending.add(t);
      return settled();
    }
    const everything = impact === undefined || impact.manifest || plan === undefined;
    plan = loaded.plan;
    const current = plan;
    syncWatcher(current.watch);
    const wanted = everything ? new Set(current.order) : withDependents(current.graph, [...pending].filter((t) => current.order.includes(t)));
    const order = current.order.filter((t) => wanted.has(t));
    if (changed !== undefined && order.length === 0) {
      emit({ type: 'watch-nothing', paths: shown(changed) });
      return settled();
    }
    if (state.kind !== 'loading') return settled(); // stopped meanwhile
    if (changed !== undefined) emit({ type: 'watch-changes', paths: shown(impact?.relevant ?? changed), targets: order });
    for (const t of order) pending.delete(t);

    const controller = new AbortController();
    const unfinished = new Set(order);
    const succeeded = new Set<string>();
    const onEvent = (e: UpEvent): void => {
      switch (e.type) {
        case 'target-fresh':
        case 'target-done':
        case 'target-kept':
          unfinished.delete(e.target);
          succeeded.add(e.target);
          break;
        case 'target-failed':
        case 'target-skipped':
          unfinished.delete(e.target);
          break;
        default:
          break;
      }
      emit(e);
    };
    iterations++;
    const done = runUp({
      ...options.up,
      project: current.project,
      recipes: current.recipes,
      order,
      requested: current.requested,
      dryRun: false,
      onEvent,
      signal: controller.signal,
    }).then(
      (r) => {
        if (!r.ok) emit({ type: 'watch-diagnostics', diagnostics: [r.error], valid: true });
      },
      (e: unknown) => {
        // A bug in a build must not end the loop: report it and keep watching.
        const detail = e instanceof Error ? (e.stack ?? e.message) : String(e);
        emit({ type: 'watch-diagnostics', diagnostics: [error('unexpected', `the build failed unexpectedly: ${detail}`)], valid: true });
      },
    );
    const iteration: Iteration = { controller, unfinished, succeeded, done };
    // Changes seen while loading: the run may already be stale.
    const during = [...state.changed];
    state = during.length > 0 ? { kind: 'queued', iteration, changed: new Set(during) } : { kind: 'running', iteration };
    if (during.length > 0) restartIfTouched(iteration, during);
    await done;
    // What did not build (failed, skipped, interrupted) is built again after the next change.
    for (const t of order) if (!succeeded.has(t)) pending.add(t);
    return settled();
  };

  /** Runs `load`; a bug in it is reported, and the loop goes on watching. */
  const startLoad = (changed: ReadonlySet<string> | undefined): void => {
    load(changed).catch((e: unknown) => {
      const detail = e instanceof Error ? (e.stack ?? e.message) : String(e);
      emit({ type: 'watch-diagnostics', diagnostics: [error('unexpected', `watch: ${detail}`)], valid: true });
      if (state.kind === 'loading' || state.kind === 'stopping') settled();
    });
  };

  /** A load or a run has settled: on to the next state. */
  const settled = (): void => {
    switch (state.kind) {
      case 'loading':
      case 'queued': {
        if (state.changed.size === 0) {
          state = { kind: 'watching' };
          waiting();
          return;
        }
        // As wireit's: the timer starts when the run has settled, so the debounce is also the
        // least time between two runs.
        state = { kind: 'debouncing', changed: state.changed, timer: setTimeout(onDebounced, options.debounceMs) };
        return;
      }
      case 'running':
        state = { kind: 'watching' };
        waiting();
        return;
      case 'stopping':
        stopNow();
        return;
      case 'watching':
      case 'debouncing':
      case 'stopped':
        // Only a load or a run settles, and neither happens in these states.
        throw new Error(`watch: a run settled in state ${state.kind}`);
      default:
        unreachable(state);
    }
  };

  function onDebounced(): void {
    switch (state.kind) {
      case 'debouncing': {
        const changed = state.changed;
        state = { kind: 'loading', changed: new Set() };
        startLoad(changed);
        return;
      }
      case 'watching':
      case 'loading':
      case 'running':
      case 'queued':
      case 'stopping':
      case 'stopped':
        // The timer is cleared whenever `debouncing` is left.
        throw new Error(`watch: debounce timer fired in state ${state.kind}`);
      default:
        unreachable(state);
    }
  }

  const onChange = (path: string): void => {
    // Changes to nothing a requested target reads are dropped here: they never start a run.
    if (watching.impact([path]).relevant.length === 0) return;
    switch (state.kind) {
      case 'watching':
        state = { kind: 'debouncing', changed: new Set([path]), timer: setTimeout(onDebounced, options.debounceMs) };
        return;
      case 'debouncing':
        state.changed.add(path);
        clearTimeout(state.timer);
        state.timer = setTimeout(onDebounced, options.debounceMs);
        return;
      case 'loading':
      case 'queued':
        state.changed.add(path);
        if (state.kind === 'queued') restartIfTouched(state.iteration, [path]);
        return;
      case 'running':
        state = { kind: 'queued', iteration: state.iteration, changed: new Set([path]) };
        restartIfTouched(state.iteration, [path]);
        return;
      case 'stopping':
      case 'stopped':
        return;
      default:
        unreachable(state);
    }
  };
  watcher.on('all', (_event, path) => onChange(path));

  /** → stopped: nothing runs any more; close the watcher and let runWatch return. */
  const stopNow = (): void => {
    state = { kind: 'stopped' };
    void watcher.close().then(finished);
  };

  const onStop = (): void => {
    switch (state.kind) {
      case 'debouncing':
        clearTimeout(state.timer);
        stopNow();
        return;
      case 'watching':
        stopNow();
        return;
      case 'loading':
        state = { kind: 'stopping' };
        return;
      case 'running':
      case 'queued':
        state.iteration.controller.abort(options.signal.reason);
        state = { kind: 'stopping', iteration: state.iteration };
        return;
      case 'stopping':
      case 'stopped':
        return;
      default:
        unreachable(state);
    }
  };
  options.signal.addEventListener('abort', onStop, { once: true });

  if (first.plan) {
    // The first run builds everything requested (fresh targets do no work).
    state = { kind: 'loading', changed: new Set() };
    startLoad(undefined);
  } else {
    // The recipes are broken from the start: say so, and wait for the fix.
    emit({ type: 'watch-diagnostics', diagnostics: first.diagnostics, valid: false });
    waiting();
  }
  if (options.signal.aborted) onStop();
  await stopped;
  options.signal.removeEventListener('abort', onStop);
  emit({ type: 'watch-stopped' });
  return ok({ iterations });
}

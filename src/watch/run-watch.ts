import { watch, type FSWatcher } from 'chokidar';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { unreachable } from '../core/unreachable.js';
import { runUp, type UpOptions } from '../executor/run-up.js';
import type { UpEvent } from '../executor/up-events.js';
import { displayPath } from '../manifest/load-project.js';
import type { WatchEventListener } from './watch-events.js';
import { loadPlan, withDependents, type Loaded, type Plan, type PlanOptions } from './watch-plan.js';
import type { WatchSet } from './watch-set.js';

/** The cache store a run uses (src/store's Store; the watch layer takes it from the executor's options). */
type Store = UpOptions['store'];

/** Where the project is and what to build (as for loadPlan; the store is `up.store`'s, or `storeFor`'s). */
export interface WatchOptions extends Omit<PlanOptions, 'storeDir'> {
  /** The settings of every iteration's `up`. */
  readonly up: Omit<UpOptions, 'project' | 'recipes' | 'order' | 'requested' | 'dryRun' | 'onEvent' | 'signal'>;
  /**
   * Opens the store of a manifest's `cache.dir` (undefined: the default one): a manifest edit that
   * changes `cache.dir` takes effect at the next run. Absent (`--cache-dir`), `up.store` is kept.
   */
  readonly storeFor?: (cacheDir: string | undefined) => Promise<Store>;
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

/** One `up` run of the loop. */
interface Iteration {
  /** Stops the whole run (Ctrl-C). */
  readonly controller: AbortController;
  /** Stops one target of the run (its inputs changed while it builds); the others go on. */
  readonly targets: ReadonlyMap<string, AbortController>;
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
 * - `queued`: an `up` run is building and changes came in. Each target of the run that a change
 *   touches and that has not finished (its inputs, or the inputs of a target it is built from) is
 *   stopped on its own (runUp reports it "interrupted" and cleans it up: no mounts, temp folders or
 *   processes are left); the other targets of the run go on and finish once. When the run has
 *   settled, the changes are debounced and the next run builds what was stopped.
 * - `stopping`: Ctrl-C during a load or a run: the run is aborted, the loop ends once it settled.
 * - `stopped`: the watcher is closed; runWatch returns.
 *
 * Each arrow is one method of Watcher: #onChange, #onDebounced, #load, #onSettled, #onStop.
 */
type WatchState =
  | { readonly kind: 'watching' }
  | { readonly kind: 'debouncing'; readonly changed: Set<string>; timer: NodeJS.Timeout }
  | { readonly kind: 'loading'; readonly changed: Set<string> }
  | { readonly kind: 'running'; readonly iteration: Iteration }
  | { readonly kind: 'queued'; readonly iteration: Iteration; readonly changed: Set<string> }
  | { readonly kind: 'stopping'; readonly iteration?: Iteration }
  | { readonly kind: 'stopped' };

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
  const first = await loadPlan(planOptions(options));
  if (first.fatal) return fail(first.diagnostics);
  if (options.signal.aborted) return ok({ iterations: 0 });
  return ok(await new Watcher(options, first).watch());
}

const planOptions = (options: WatchOptions): PlanOptions => ({ cwd: options.cwd, dir: options.dir, file: options.file, env: options.env, set: options.set, selection: options.selection, storeDir: options.up.store.root });

/**
 * The loop of `up --watch` as a state machine (WatchState): each event that moves it (a change,
 * the debounce timer, a load or run settling, Ctrl-C) is one method, and each method says what it
 * does in every state.
 */
class Watcher {
  readonly #options: WatchOptions;
  readonly #emit: WatchEventListener;
  /** The first load, made before the watcher starts: its plan is the first run's. */
  readonly #first: Loaded;
  /** The last manifest and recipes that loaded without errors. */
  #plan: Plan | undefined;
  /** What the file watcher looks at: the plan's inputs, plus a broken version's while it is fixed. */
  #watching: WatchSet;
  /** Targets a change touched that have not been built since (a broken recipe, a failure). */
  readonly #pending = new Set<string>();
  #iterations = 0;
  /** The store the runs use, and the `cache.dir` it was opened for. */
  #store: Store;
  #cacheDir: string | undefined;
  #state: WatchState = { kind: 'watching' };
  #files!: FSWatcher;
  #warned = false;
  #finished!: () => void;

  constructor(options: WatchOptions, first: Loaded) {
    this.#options = options;
    this.#emit = options.onEvent;
    this.#first = first;
    this.#plan = first.plan;
    this.#watching = first.plan ? first.plan.watch : first.watch!;
    this.#store = options.up.store;
    this.#cacheDir = first.plan?.project.cacheDir;
  }

  /** Runs the loop until Ctrl-C, and returns once nothing runs any more. */
  async watch(): Promise<WatchSummary> {
    const stopped = new Promise<void>((resolve) => (this.#finished = resolve));
    this.#files = watch(this.#watching.paths(), {
      ignoreInitial: true,
      // A root folder's symlinks point into the image (`/usr/bin`), never at the host's files.
      followSymlinks: false,
      ignored: (path: string) => this.#watching.isExcluded(path),
    });
    this.#files.on('error', (e: unknown) => this.#onWatchError(e));
    await new Promise<void>((resolve) => this.#files.once('ready', () => resolve()));
    this.#files.on('all', (_event, path) => this.#onChange(path));
    const onStop = (): void => this.#onStop();
    this.#options.signal.addEventListener('abort', onStop, { once: true });
    if (this.#first.plan) {
      // The first run builds everything requested (fresh targets do no work).
      this.#state = { kind: 'loading', changed: new Set() };
      this.#startLoad(undefined);
    } else {
      // The recipes are broken from the start: say so, and wait for the fix.
      this.#emit({ type: 'watch-diagnostics', diagnostics: this.#first.diagnostics, valid: false });
      this.#waiting();
    }
    if (this.#options.signal.aborted) this.#onStop();
    await stopped;
    this.#options.signal.removeEventListener('abort', onStop);
    this.#emit({ type: 'watch-stopped' });
    return { iterations: this.#iterations };
  }

  /** Typically the inotify limit (ENOSPC): say it once; the watch goes on with what it has. */
  #onWatchError(e: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    const message = `cannot watch every input: ${e instanceof Error ? e.message : String(e)}; some changes may be missed`;
    const warning: Diagnostic = { ...error('watch-failed', message, { hint: 'raise fs.inotify.max_user_watches, or watch fewer targets' }), severity: 'warning' };
    this.#emit({ type: 'watch-diagnostics', diagnostics: [warning], valid: true });
  }

  /** A file changed: → debouncing, or kept for after the load or run (which it may abort). */
  #onChange(path: string): void {
    // Changes to nothing a requested target reads are dropped here: they never start a run.
    if (this.#watching.impact([path]).relevant.length === 0) return;
    const state = this.#state;
    switch (state.kind) {
      case 'watching':
        this.#state = { kind: 'debouncing', changed: new Set([path]), timer: this.#debounce() };
        return;
      case 'debouncing':
        state.changed.add(path);
        clearTimeout(state.timer);
        state.timer = this.#debounce();
        return;
      case 'loading':
        state.changed.add(path);
        return;
      case 'queued':
        state.changed.add(path);
        this.#restartIfTouched(state.iteration, [path]);
        return;
      case 'running':
        this.#state = { kind: 'queued', iteration: state.iteration, changed: new Set([path]) };
        this.#restartIfTouched(state.iteration, [path]);
        return;
      case 'stopping':
      case 'stopped':
        return;
      default:
        unreachable(state);
    }
  }

  #debounce(): NodeJS.Timeout {
    return setTimeout(() => this.#onDebounced(), this.#options.debounceMs);
  }

  /** The debounce timer fired: debouncing → loading. */
  #onDebounced(): void {
    const state = this.#state;
    switch (state.kind) {
      case 'debouncing':
        this.#state = { kind: 'loading', changed: new Set() };
        this.#startLoad(state.changed);
        return;
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

  /** A load or a run has settled: → watching, debouncing (changes came meanwhile) or stopped. */
  #onSettled(): void {
    const state = this.#state;
    switch (state.kind) {
      case 'loading':
      case 'queued':
        if (state.changed.size === 0) {
          this.#state = { kind: 'watching' };
          this.#waiting();
          return;
        }
        // As wireit's: the timer starts when the run has settled, so the debounce is also the
        // least time between two runs.
        this.#state = { kind: 'debouncing', changed: state.changed, timer: this.#debounce() };
        return;
      case 'running':
        this.#state = { kind: 'watching' };
        this.#waiting();
        return;
      case 'stopping':
        this.#stopNow();
        return;
      case 'watching':
      case 'debouncing':
      case 'stopped':
        // Only a load or a run settles, and neither happens in these states.
        throw new Error(`watch: a run settled in state ${state.kind}`);
      default:
        unreachable(state);
    }
  }

  /** Ctrl-C: → stopped at once when nothing runs, else → stopping (the run is aborted). */
  #onStop(): void {
    const state = this.#state;
    switch (state.kind) {
      case 'debouncing':
        clearTimeout(state.timer);
        this.#stopNow();
        return;
      case 'watching':
        this.#stopNow();
        return;
      case 'loading':
        this.#state = { kind: 'stopping' };
        return;
      case 'running':
      case 'queued':
        state.iteration.controller.abort(this.#options.signal.reason);
        this.#state = { kind: 'stopping', iteration: state.iteration };
        return;
      case 'stopping':
      case 'stopped':
        return;
      default:
        unreachable(state);
    }
  }

  /** → stopped: nothing runs any more; close the watcher and let `watch` return. */
  #stopNow(): void {
    this.#state = { kind: 'stopped' };
    void this.#files.close().then(this.#finished);
  }

  /** Runs `#load`; a bug in it is reported, and the loop goes on watching. */
  #startLoad(changed: ReadonlySet<string> | undefined): void {
    this.#load(changed).catch((e: unknown) => {
      const detail = e instanceof Error ? (e.stack ?? e.message) : String(e);
      this.#emit({ type: 'watch-diagnostics', diagnostics: [error('unexpected', `watch: ${detail}`)], valid: true });
      if (this.#state.kind === 'loading' || this.#state.kind === 'stopping') this.#onSettled();
    });
  }

  /** `loading`: reads the plan again, then starts a run of what the changes touched (all at first). */
  async #load(changed: ReadonlySet<string> | undefined): Promise<void> {
    const previous = this.#watching;
    const loaded = changed === undefined ? this.#first : await loadPlan({ ...planOptions(this.#options), storeDir: this.#store.root });
    if (loaded.diagnostics.length > 0) this.#emit({ type: 'watch-diagnostics', diagnostics: loaded.diagnostics, valid: loaded.plan !== undefined });
    const impact = changed === undefined ? undefined : (loaded.plan ? loaded.plan.watch.union(previous) : previous).impact(changed);
    if (impact) for (const t of impact.targets) this.#pending.add(t);
    if (!loaded.plan) {
      // Keep the last good plan's inputs watched, and the broken version's, until it is fixed.
      const broken = loaded.watch;
      const plan = this.#plan;
      this.#syncWatcher(broken && plan ? broken.union(plan.watch) : (broken ?? (plan ? plan.watch : this.#watching)));
      if (impact?.manifest && plan) for (const t of plan.order) this.#pending.add(t);
      return this.#onSettled();
    }
    const everything = impact === undefined || impact.manifest || this.#plan === undefined;
    const current = (this.#plan = loaded.plan);
    if (this.#options.storeFor && current.project.cacheDir !== this.#cacheDir) {
      // cache.dir changed: the runs from now on use that store (and never watch it).
      this.#store = await this.#options.storeFor(current.project.cacheDir);
      this.#cacheDir = current.project.cacheDir;
    }
    this.#syncWatcher(current.watch);
    const wanted = everything ? new Set(current.order) : withDependents(current.graph, [...this.#pending].filter((t) => current.order.includes(t)));
    const order = current.order.filter((t) => wanted.has(t));
    if (changed !== undefined && order.length === 0) {
      this.#emit({ type: 'watch-nothing', paths: this.#shown(changed) });
      return this.#onSettled();
    }
    if (this.#state.kind !== 'loading') return this.#onSettled(); // stopped meanwhile
    if (changed !== undefined) this.#emit({ type: 'watch-changes', paths: this.#shown(impact?.relevant ?? changed), targets: order });
    for (const t of order) this.#pending.delete(t);
    const iteration = this.#startRun(current, order);
    // Changes seen while loading: the run may already be stale.
    const during = [...this.#state.changed];
    this.#state = during.length > 0 ? { kind: 'queued', iteration, changed: new Set(during) } : { kind: 'running', iteration };
    if (during.length > 0) this.#restartIfTouched(iteration, during);
    await iteration.done;
    // What did not build (failed, skipped, interrupted) is built again after the next change.
    for (const t of order) if (!iteration.succeeded.has(t)) this.#pending.add(t);
    return this.#onSettled();
  }

  /** Starts one `up` of `order`; its events go to the listener and keep the iteration's tally. */
  #startRun(plan: Plan, order: readonly string[]): Iteration {
    const controller = new AbortController();
    const targets = new Map(order.map((t) => [t, new AbortController()]));
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
      this.#emit(e);
    };
    this.#iterations++;
    const done = runUp({
      ...this.#options.up,
      store: this.#store,
      project: plan.project,
      recipes: plan.recipes,
      order,
      requested: plan.requested,
      dryRun: false,
      onEvent,
      signal: controller.signal,
      targetSignal: (t) => targets.get(t)?.signal,
    }).then(
      (r) => {
        if (!r.ok) this.#emit({ type: 'watch-diagnostics', diagnostics: [r.error], valid: true });
      },
      (e: unknown) => {
        // A bug in a build must not end the loop: report it and keep watching.
        const detail = e instanceof Error ? (e.stack ?? e.message) : String(e);
        this.#emit({ type: 'watch-diagnostics', diagnostics: [error('unexpected', `the build failed unexpectedly: ${detail}`)], valid: true });
      },
    );
    return { controller, targets, unfinished, succeeded, done };
  }

  /** Watches `next` from now on: adds what is new to the file watcher, drops what is gone. */
  #syncWatcher(next: WatchSet): void {
    const before = new Set(this.#watching.paths());
    this.#watching = next;
    const after = next.paths();
    const added = after.filter((p) => !before.has(p));
    const removed = [...before].filter((p) => !after.includes(p));
    if (removed.length > 0) this.#files.unwatch(removed);
    if (added.length > 0) this.#files.add(added);
  }

  #waiting(): void {
    this.#emit({ type: 'watch-waiting', watched: this.#watching.paths().length });
  }

  #shown(paths: Iterable<string>): string[] {
    return [...paths].map((p) => displayPath(this.#options.cwd, p));
  }

  /** Stops the targets of the run that `paths` touch and that have not finished; the others go on. */
  #restartIfTouched(iteration: Iteration, paths: readonly string[]): void {
    if (iteration.controller.signal.aborted || !this.#plan) return;
    const impact = this.#watching.impact(paths);
    const touched = impact.manifest ? new Set(this.#plan.order) : withDependents(this.#plan.graph, impact.targets);
    const stale = [...iteration.unfinished].filter((t) => touched.has(t) && iteration.targets.get(t)?.signal.aborted === false);
    if (stale.length === 0) return;
    this.#emit({ type: 'watch-restart', paths: this.#shown(paths), targets: stale });
    for (const t of stale) iteration.targets.get(t)!.abort(new Error('inputs changed'));
  }
}

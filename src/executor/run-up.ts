import { join } from 'node:path';
import PQueue from 'p-queue';
import { stepName } from '../builder/build-events.js';
import type { SourceResolver } from '../builder/source-resolver.js';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { errnoCode } from '../core/errno-failure.js';
import { ok, type Result } from '../core/result.js';
import type { StaleReason } from '../freshness/explain.js';
import type { ReadSet } from '../freshness/read-set.js';
import { StatIndex } from '../freshness/stat-index.js';
import { LOCK_FILE_NAME, readLockFile } from '../lock/lock-file.js';
import type { Project, Target } from '../manifest/project.js';
import type { Recipe } from '../recipe/model.js';
import type { Platform } from '../registry/media-types.js';
import { DEFAULT_PLATFORM } from '../registry/platform.js';
import type { RegistryClient } from '../registry/registry-client.js';
import { acquireProjectLock } from '../state/project-lock.js';
import { ProjectState } from '../state/project-state.js';
import { StateDir } from '../state/state-dir.js';
import { IGNORE_FILE, InputFilter } from '../freshness/input-filter.js';
import type { Store } from '../store/store.js';
import type { BuildContext } from './build-inputs.js';
import { buildOne } from './build-one.js';
import { duePushes, pushTarget, type DuePush } from './push-outputs.js';
import { probeOne } from './probe-one.js';
import { LockPins } from './lock-pins.js';
import { claimOutput, clearTakenOver } from './output-claim.js';
import type { RemoteCacheSummary, RemoteStepCache } from '../builder/remote-cache.js';
import { sweepDeadTemps } from './stale-temps.js';
import { handModified, targetFailure } from './target-failure.js';
import { targetStatus, type TargetStatus } from './target-status.js';
import type { UpEvent, UpEventListener, UpSummary } from './up-events.js';

export { targetStatus, type TargetStatus } from './target-status.js';

export interface UpOptions {
  readonly project: Project;
  readonly recipes: ReadonlyMap<string, Recipe>;
  /** Targets to build, dependencies included, in build order. */
  readonly order: readonly string[];
  /** The targets named on the command line (or by the default group); the rest are dependencies. */
  readonly requested: ReadonlySet<string>;
  readonly jobs: number;
  readonly keepGoing: boolean;
  /** Rebuild even when fresh, discard hand-made changes to sandboxes, take over outputs orchestrator did not write. */
  readonly force: boolean;
  readonly noCache: boolean;
  readonly noTest: boolean;
  /** Resolve registry tags again instead of using orchestrator.lock. */
  readonly pull: boolean;
  /** Push every `push:` entry of the targets of the run, due or not (`up --push`). */
  readonly push?: boolean;
  readonly dryRun: boolean;
  readonly store: Store;
  readonly client: () => Promise<RegistryClient>;
  readonly platform?: Platform;
  readonly epoch?: number;
  readonly toolVersion: string;
  readonly onEvent: UpEventListener;
  readonly signal: AbortSignal;
  /**
   * A target's own stop (`up --watch`: its inputs changed while it builds): that target's build is
   * stopped and cleaned up as an interrupted one, reported as `interrupted`, and its dependents are
   * skipped; the other targets go on. Undefined: only `signal` stops targets.
   */
  readonly targetSignal?: (target: string) => AbortSignal | undefined;
  /** Every path the run reads to decide what is fresh is added here (the no-op witness). */
  readonly reads?: ReadSet;
  /** The remote step cache: asked before a step runs, given the steps built; its pushes are waited for before `run-done`. */
  readonly remoteCache?: RemoteStepCache;
  /**
   * With `dryRun` (`plan --remote`): each stale target's steps are planned and `remoteCache`'s
   * repositories asked for those the store lacks (`step-planned` events); nothing is pulled or run.
   */
  readonly probeRemote?: boolean;
}

/**
 * What became of a target, for its dependents. `push-failed`: built and recorded (or fresh), but a
 * push of it failed: the target fails, yet its output is there, so its dependents build from it.
 */
type Outcome = 'ok' | 'failed' | 'skipped' | 'push-failed';

/** One `up` run while it runs: what was opened, the schedule, and the counts for the summary. */
interface Run {
  readonly options: UpOptions;
  readonly build: BuildContext;
  readonly byName: ReadonlyMap<string, Target>;
  readonly queue: PQueue;
  readonly outcome: Map<string, Promise<Outcome>>;
  readonly wouldBuild: Set<string>;
  readonly summary: { built: number; fresh: number; failed: number; skipped: number; stepsCached: number; pushed: number; pushedBytes: number };
  /** What each target is doing now (from its events), to say where an exception hit it. */
  readonly phase: Map<string, string>;
  stopped: boolean;
  /** Undo what opening took: the store mark, the project lock; save the pins and stat index. */
  readonly close: () => Promise<void>;
}

/**
 * `orchestrator up` (docs/ARCHITECTURE.md, Pipeline): builds the stale targets of `order`, dependencies first,
 * independent targets in parallel (`jobs`), stopping at the first failure unless `keepGoing`.
 * A fresh target does no work at all. State is written after each target's output. Every target
 * runs inside a boundary: whatever it throws is its failure, and the run always ends with
 * `run-done`.
 */
export async function runUp(options: UpOptions): Promise<Result<UpSummary, Diagnostic>> {
  const started = Date.now();
  const opened = await openRun(options);
  if (!opened.ok) return opened;
  const run = opened.value;
  let remote: RemoteCacheSummary | undefined;
  try {
    for (const name of options.order) run.outcome.set(name, runTarget(run, name));
    await Promise.all(run.outcome.values());
    await run.queue.onIdle();
    // Pushes ran alongside the builds; the summary reports them, so the run (and its mark on the
    // store, which keeps `cache prune` off the snapshots being pushed) ends when they do.
    remote = await options.remoteCache?.settle();
  } finally {
    await run.close();
  }
  const result: UpSummary = { ...run.summary, ms: Date.now() - started, interrupted: options.signal.aborted, ...(remote ? { remoteCache: remote } : {}) };
  options.onEvent({ type: 'run-done', summary: result });
  return ok(result);
}

/** Opens a run: the project lock, the pins of orchestrator.lock, the state, the store mark, the stat index. */
async function openRun(options: UpOptions): Promise<Result<Run, Diagnostic>> {
  const { project } = options;
  const stateDir = new StateDir(project.dir);
  const projectLock = options.dryRun ? { ok: true as const, value: { release: async () => undefined } } : await acquireProjectLock(stateDir);
  if (!projectLock.ok) return projectLock;
  const lockPath = join(project.dir, LOCK_FILE_NAME);
  const lockRead = await readLockFile(lockPath);
  if (!lockRead.ok) {
    await projectLock.value.release();
    return lockRead;
  }
  const pins = new LockPins(lockRead.value, lockPath, options.pull, options.dryRun);
  options.reads?.add(lockPath);
  options.reads?.add(stateDir.state);
  const state = await ProjectState.load(project.dir);
  const releaseStore = options.dryRun ? async () => undefined : await markStore(options.store, project.dir);
  const index = await StatIndex.load(stateDir.statIndex);
  // Never read as an input: the state folder, the cache, every output; and .orchestratorignore.
  const filter = InputFilter.load({ projectDir: project.dir, always: [stateDir.root, options.store.root, ...project.targets.map((t) => t.output)] });
  options.reads?.add(join(project.dir, IGNORE_FILE));
  const platform = options.platform ?? DEFAULT_PLATFORM;
  const phase = new Map<string, string>();
  const build: BuildContext = {
    project,
    state,
    index,
    pins,
    platform,
    store: options.store,
    toolVersion: options.toolVersion,
    noCache: options.noCache,
    noTest: options.noTest,
    ...(options.epoch !== undefined ? { epoch: options.epoch } : {}),
    resolver: sourceResolver(options, stateDir, pins, platform),
    inflight: new Map(),
    ...(options.remoteCache && !options.dryRun ? { remoteCache: options.remoteCache } : {}),
    memo: new Map(),
    filter,
    emit: (e) => {
      trackPhase(phase, e);
      options.onEvent(e);
    },
    signal: options.signal,
  };
  return ok({
    options,
    build,
    byName: new Map(project.targets.map((t) => [t.name, t])),
    queue: new PQueue({ concurrency: Math.max(1, options.jobs) }),
    outcome: new Map(),
    wouldBuild: new Set(),
    summary: { built: 0, fresh: 0, failed: 0, skipped: 0, stepsCached: 0, pushed: 0, pushedBytes: 0 },
    phase,
    stopped: false,
    close: async () => {
      await pins.flush();
      if (!options.dryRun) await index.save().catch(() => undefined);
      await projectLock.value.release();
      await releaseStore();
    },
  });
}

/** Follows a target's build events: the step it is in, for the failure of an exception. */
function trackPhase(phase: Map<string, string>, e: UpEvent): void {
  if (e.type === 'step-started') phase.set(e.target, stepName(e.step));
  else if (e.type === 'test-started') phase.set(e.target, '%test');
  else if (e.type === 'export-started') phase.set(e.target, 'export');
  else if (e.type === 'export-done') phase.set(e.target, 'recording');
}

/**
 * Marks the store as in use and registers the project with it. A store that cannot be written
 * (a read-only cache) is not the end of the run: fresh targets need nothing of it, and a target
 * that must build fails on its own, saying which path could not be written.
 */
async function markStore(store: Store, projectDir: string): Promise<() => Promise<void>> {
  try {
    const release = await store.markActive();
    await store.registerProject(projectDir);
    return release;
  } catch (e) {
    if (errnoCode(e) === undefined) throw e;
    return async () => undefined;
  }
}

/** The source resolver of a target; the build engine loads only when something is stale, so a no-op run never pays for it. */
function sourceResolver(options: UpOptions, stateDir: StateDir, pins: LockPins, platform: Platform): BuildContext['resolver'] {
  return async (target, targetOutputs): Promise<SourceResolver> =>
    new (await import('../builder/source-resolver.js')).SourceResolver({
      store: options.store,
      client: options.client,
      platform,
      pins,
      targetOutputs,
      debootstrapLogFile: join(stateDir.logs(target), 'debootstrap.log'),
      // debootstrap takes minutes: say when it starts and ends, as a line of the target's output.
      onDebootstrapEvent: (e) => {
        const line =
          e.type === 'debootstrap-started'
            ? `debootstrap ${e.suite} (${e.arch}) from ${e.mirror} ...`
            : e.type === 'debootstrap-done'
              ? `debootstrap ${e.suite}: done in ${(e.ms / 1000).toFixed(1)} s`
              : undefined;
        if (line !== undefined) options.onEvent({ type: 'step-output', target, step: { kind: 'source' }, chunk: `${line}\n` });
      },
      signal: options.signal,
    });
}

/** One target, inside its boundary: wait for its dependencies, then status → explain → build → record. */
async function runTarget(run: Run, name: string): Promise<Outcome> {
  const target = run.byName.get(name)!;
  const deps = await Promise.all(target.dependencies.map((d) => run.outcome.get(d) ?? Promise.resolve<Outcome>('ok')));
  const badDep = target.dependencies.find((_, i) => deps[i] !== 'ok' && deps[i] !== 'push-failed');
  if (badDep !== undefined) return skip(run, name, `dependency ${badDep} did not build`);
  if (run.stopped || run.options.signal.aborted) return skip(run, name, run.options.signal.aborted ? 'interrupted' : 'an earlier target failed');
  try {
    return await checkAndBuild(run, target);
  } catch (e) {
    return caught(run, name, e, 'checking', 0);
  }
}

function skip(run: Run, name: string, because: string): Outcome {
  run.options.onEvent({ type: 'target-skipped', target: name, because });
  run.summary.skipped++;
  return 'skipped';
}

function failed(run: Run, name: string, e: Diagnostic, ms: number, outcome: 'failed' | 'push-failed' = 'failed'): Outcome {
  run.options.onEvent({ type: 'target-failed', target: name, error: e, ms });
  run.summary.failed++;
  // A failed push leaves its output built and recorded: the targets after it need not stop.
  if (outcome === 'failed' && !run.options.keepGoing) run.stopped = true;
  return outcome;
}

/** The boundary's catch: after Ctrl-C whatever was thrown is the interruption; else the target's failure (targetFailure). */
function caught(run: Run, name: string, e: unknown, step: string, ms: number): Outcome {
  if (run.options.signal.aborted) return failed(run, name, error('interrupted', `building ${name} was interrupted`), ms);
  return failed(run, name, targetFailure(e, { target: name, step }), ms);
}

/** Decides what to do with a target (fresh, kept, refused, built) and queues its build. */
async function checkAndBuild(run: Run, target: Target): Promise<Outcome> {
  const { options, build } = run;
  const name = target.name;
  const recipe = options.recipes.get(name);
  const status = await targetStatus(target, {
    recipe,
    state: build.state,
    lock: build.pins.lock,
    index: build.index,
    project: options.project,
    platform: build.platform,
    toolVersion: options.toolVersion,
    force: options.force,
    filter: build.filter,
    memo: build.memo,
    ...(options.reads ? { reads: options.reads } : {}),
  });
  const reasons = explain(run, target, status);
  if (reasons.length === 0) {
    // Fresh, but maybe not pushed (a push that failed, a new destination, --push).
    const due = status.record ? duePushes(target, status.record, status.record.key, options.push === true) : [];
    if (due.length > 0 && !options.dryRun) return run.queue.add(() => pushFresh(run, target, due)) as Promise<Outcome>;
    for (const d of due) options.onEvent({ type: 'push-planned', target: name, destination: d.destination.ref, why: d.why });
    options.onEvent({ type: 'target-fresh', target: name });
    run.summary.fresh++;
    return 'ok';
  }
  const claim = options.dryRun ? { ok: true as const } : await claimOutput(target, { projectDir: options.project.dir, exists: status.exists, owned: status.owned, force: options.force });
  options.onEvent({ type: 'target-stale', target: name, reasons: claim.ok && claim.takeover ? [...reasons, claim.takeover] : reasons, dryRun: options.dryRun });
  if (options.dryRun) {
    if (options.probeRemote && options.remoteCache) await probe(run, target, recipe, options.remoteCache);
    // Stale only for what the run knows (a dependency rebuilt first, --pull): the key may change.
    const key = status.reasons.length === 0 ? undefined : status.fingerprint.key;
    for (const d of duePushes(target, status.record, key, options.push === true)) {
      options.onEvent({ type: 'push-planned', target: name, destination: d.destination.ref, why: d.why });
    }
    run.wouldBuild.add(name);
    return 'ok';
  }
  if (!claim.ok) return failed(run, name, claim.error, 0);
  if (status.exists && !status.owned) await clearTakenOver(target);
  if (status.dirty && !options.force) {
    const otherReasons = reasons.filter((r) => r.code !== 'output-modified');
    if (!options.requested.has(name) && otherReasons.length === 0) {
      // Only needed as a source, and stale for no other reason: the Singularity flow builds
      // production images from the dev sandbox as it is now, hand-made changes included.
      options.onEvent({ type: 'target-kept', target: name, changes: status.dirty.count });
      run.summary.fresh++;
      return 'ok';
    }
    const dependents = options.requested.has(name) ? [] : options.order.filter((n) => run.byName.get(n)?.dependencies.includes(name));
    return failed(run, name, handModified(options.project.dir, target, status.dirty, otherReasons, dependents), 0);
  }
  return run.queue.add(() => buildQueued(run, target, recipe, status)) as Promise<Outcome>;
}

/** Why a target is rebuilt: its status's reasons, and what only the run knows (--pull, a dry run's dependencies). */
function explain(run: Run, target: Target, status: TargetStatus): StaleReason[] {
  const reasons: StaleReason[] = [...status.reasons];
  if (run.options.pull && reasons.length === 0 && (target.from?.kind === 'docker' || target.from?.kind === 'oras')) reasons.push({ code: 'source', message: 'tags re-resolved (--pull)' });
  // A dry run builds nothing, so a dependent cannot see its dependency's new output: say so.
  if (run.options.dryRun && reasons.length === 0) {
    for (const d of target.dependencies) if (run.wouldBuild.has(d)) reasons.push({ code: 'source', message: `dependency ${d} would be rebuilt` });
  }
  return reasons;
}

/**
 * A target stopped on its own (UpOptions.targetSignal): reported as interrupted, as a stopped run's
 * targets are, but the run goes on (no `stopped`, whatever keepGoing says).
 */
function stoppedAlone(run: Run, name: string, ms: number): Outcome {
  run.options.onEvent({ type: 'target-failed', target: name, error: error('interrupted', `building ${name} was stopped: its inputs changed`), ms });
  run.summary.failed++;
  return 'failed';
}

/** A target's build, once the queue lets it run: temps of killed runs swept, built, recorded. */
async function buildQueued(run: Run, target: Target, recipe: Recipe | undefined, status: TargetStatus): Promise<Outcome> {
  const { options } = run;
  if (run.stopped || options.signal.aborted) return skip(run, target.name, options.signal.aborted ? 'interrupted' : 'an earlier target failed');
  const own = options.targetSignal?.(target.name);
  const alone = (): boolean => own?.aborted === true && !options.signal.aborted;
  if (alone()) return stoppedAlone(run, target.name, 0);
  options.onEvent({ type: 'target-started', target: target.name });
  run.phase.set(target.name, 'source');
  const t0 = Date.now();
  try {
    await sweepDeadTemps(target.output);
    const context = own ? { ...run.build, signal: AbortSignal.any([options.signal, own]) } : run.build;
    const r = await buildOne(context, target, recipe, status);
    if (!r.ok) return alone() ? stoppedAlone(run, target.name, Date.now() - t0) : failed(run, target.name, r.error, Date.now() - t0);
    // Built and recorded; its push (when due) is part of the target: a failed one fails it (its
    // dependents still build: the output is there).
    const due = duePushes(target, run.build.state.get(target.name), r.value.key, options.push === true);
    if (due.length > 0) {
      const pushed = await pushTarget(pushContext(run, context.signal), target, due);
      if (!pushed.ok) return alone() ? stoppedAlone(run, target.name, Date.now() - t0) : failed(run, target.name, pushed.error, Date.now() - t0, 'push-failed');
      run.summary.pushed += pushed.value.pushed;
      run.summary.pushedBytes += pushed.value.bytesSent;
    }
    run.summary.built++;
    run.summary.stepsCached += r.value.stepsCached;
    options.onEvent({ type: 'target-done', target: target.name, ms: Date.now() - t0, stepsRun: r.value.stepsRun, stepsCached: r.value.stepsCached, key: r.value.key });
    return 'ok';
  } catch (e) {
    if (alone()) return stoppedAlone(run, target.name, Date.now() - t0);
    return caught(run, target.name, e, run.phase.get(target.name) ?? 'building', Date.now() - t0);
  }
}

function pushContext(run: Run, signal: AbortSignal): Parameters<typeof pushTarget>[0] {
  return { state: run.build.state, store: run.options.store, client: run.options.client, emit: run.build.emit, signal };
}

/** A fresh target whose output is not pushed to all its destinations yet: pushed, then reported fresh (or failed). */
async function pushFresh(run: Run, target: Target, due: readonly DuePush[]): Promise<Outcome> {
  const { options } = run;
  if (run.stopped || options.signal.aborted) return skip(run, target.name, options.signal.aborted ? 'interrupted' : 'an earlier target failed');
  const t0 = Date.now();
  run.phase.set(target.name, 'push');
  try {
    const pushed = await pushTarget(pushContext(run, options.signal), target, due);
    if (!pushed.ok) return failed(run, target.name, pushed.error, Date.now() - t0, 'push-failed');
    run.summary.pushed += pushed.value.pushed;
    run.summary.pushedBytes += pushed.value.bytesSent;
    options.onEvent({ type: 'target-fresh', target: target.name });
    run.summary.fresh++;
    return 'ok';
  } catch (e) {
    return caught(run, target.name, e, 'push', Date.now() - t0);
  }
}

/** `plan --remote`: where a stale target's steps would come from; its keys are unknown while a dependency would be rebuilt. */
async function probe(run: Run, target: Target, recipe: Recipe | undefined, remoteCache: RemoteStepCache): Promise<void> {
  const rebuilt = target.dependencies.find((d) => run.wouldBuild.has(d));
  if (rebuilt !== undefined) {
    run.options.onEvent({ type: 'probe-skipped', target: target.name, because: `its steps' keys depend on ${rebuilt}, which would be rebuilt first` });
    return;
  }
  try {
    const r = await probeOne(run.build, target, recipe, remoteCache);
    if (!r.ok) run.options.onEvent({ type: 'probe-skipped', target: target.name, because: r.error.message });
  } catch (e) {
    // A probe only informs: whatever it hit, the plan goes on.
    run.options.onEvent({ type: 'probe-skipped', target: target.name, because: targetFailure(e, { target: target.name, step: 'probe' }).message });
  }
}

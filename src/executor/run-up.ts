import { statSync, type Stats } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import PQueue from 'p-queue';
import type { SourceSpec } from '../builder/build-source.js';
import type { TagPins } from '../builder/registry-source.js';
import type { SourceResolver } from '../builder/source-resolver.js';
import { error, type Diagnostic } from '../core/diagnostic.js';
import type { Digest } from '../core/digest.js';
import { fail, ok, type Result } from '../core/result.js';
import { explainChange, type StaleReason } from '../freshness/explain.js';
import { changedWhileBuilding, targetFingerprint, type Fingerprint } from '../freshness/fingerprint.js';
import { acquireProjectLock } from '../state/project-lock.js';
import { ProjectState, type OutputIdentity, type TargetRecord } from '../state/project-state.js';
import { StateDir } from '../state/state-dir.js';
import { StatIndex } from '../freshness/stat-index.js';
import type { ReadSet } from '../freshness/read-set.js';
import { diffTrees, treeIdentity, writtenTreeDigest, type TreeEntryDigest } from '../freshness/tree-digest.js';
import { LOCK_FILE_NAME, readLockFile, withLockEntry, writeLockFile, type LockData } from '../lock/lock-file.js';
import type { Project, Target } from '../manifest/project.js';
import type { Recipe } from '../recipe/model.js';
import type { Platform } from '../registry/media-types.js';
import { formatPlatform, DEFAULT_PLATFORM } from '../registry/platform.js';
import type { RegistryClient } from '../registry/registry-client.js';
import type { Store } from '../store/store.js';
import type { UpEventListener, UpSummary } from './up-events.js';
import { nameTable, ownValue } from '../core/name-table.js';

export interface UpOptions {
  readonly project: Project;
  readonly recipes: ReadonlyMap<string, Recipe>;
  /** Targets to build, dependencies included, in build order. */
  readonly order: readonly string[];
  /** The targets named on the command line (or by the default group); the rest are dependencies. */
  readonly requested: ReadonlySet<string>;
  readonly jobs: number;
  readonly keepGoing: boolean;
  /** Rebuild even when fresh, and discard hand-made changes to sandboxes. */
  readonly force: boolean;
  readonly noCache: boolean;
  readonly noTest: boolean;
  /** Resolve registry tags again instead of using orchestrator.lock. */
  readonly pull: boolean;
  readonly dryRun: boolean;
  readonly store: Store;
  readonly client: () => Promise<RegistryClient>;
  readonly platform?: Platform;
  readonly epoch?: number;
  readonly toolVersion: string;
  readonly onEvent: UpEventListener;
  readonly signal: AbortSignal;
  /** Every path the run reads to decide what is fresh is added here (the no-op witness). */
  readonly reads?: ReadSet;
}

export interface TargetStatus {
  readonly name: string;
  readonly fingerprint: Fingerprint;
  readonly record: TargetRecord | undefined;
  readonly reasons: readonly StaleReason[];
  /** A sandbox update in place was interrupted: the output is rewritten in full. */
  readonly interrupted: boolean;
  /** Paths changed by hand in a sandbox output (first ones), and how many in all. */
  readonly dirty?: { readonly paths: readonly string[]; readonly count: number };
}

/**
 * What the output is now. A sandbox's listing (`entries`) comes with it when `listing` is asked
 * for (after a build: the tree was just written, see writtenTreeDigest), or when the tree was
 * walked anyway (its stat signature is not the remembered one).
 */
async function outputIdentity(target: Target, index: StatIndex, listing: false | { readonly clockDir: string }, reads?: ReadSet): Promise<{ identity: OutputIdentity; entries?: readonly TreeEntryDigest[] } | undefined> {
  reads?.add(target.output);
  // Synchronous: a hundred targets' stat calls cost far less than as many thread-pool round trips.
  const st = statOrUndefined(target.output);
  if (!st) return undefined;
  if (target.format === 'sandbox') {
    if (!st.isDirectory()) return { identity: { kind: 'tree', digest: 'not-a-folder' } };
    const tree = listing ? await writtenTreeDigest(target.output, { index, clockDir: listing.clockDir }) : await treeIdentity(target.output, { index, ...(reads ? { reads } : {}) });
    return { identity: { kind: 'tree', digest: tree.digest }, ...(tree.entries ? { entries: tree.entries } : {}) };
  }
  return { identity: { kind: 'file', size: st.size, mtimeMs: st.mtimeMs, ino: st.ino } };
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

function sameIdentity(a: OutputIdentity, b: OutputIdentity): boolean {
  if (a.kind === 'tree' && b.kind === 'tree') return a.digest === b.digest;
  if (a.kind === 'file' && b.kind === 'file') return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
  return false;
}

/** Everything `plan` and `up` need to know about one target before building it. */
export async function targetStatus(
  target: Target,
  options: {
    recipe: Recipe | undefined;
    state: ProjectState;
    lock: LockData;
    index: StatIndex;
    project: Project;
    platform: Platform;
    toolVersion: string;
    force?: boolean;
    memo?: Map<string, Promise<string>>;
    reads?: ReadSet;
  },
): Promise<TargetStatus> {
  const fingerprint = await targetFingerprint(target, options.recipe, {
    projectDir: options.project.dir,
    lock: options.lock,
    platform: options.platform,
    index: options.index,
    outputOf: (name) => options.project.targets.find((t) => t.name === name)?.output,
    toolVersion: options.toolVersion,
    ...(options.memo ? { memo: options.memo } : {}),
    ...(options.reads ? { reads: options.reads } : {}),
  });
  const record = options.state.get(target.name);
  const reasons: StaleReason[] = [];
  let out = await outputIdentity(target, options.index, false, options.reads);
  let dirty: TargetStatus['dirty'];
  if (target.format === 'sandbox') options.reads?.add(options.state.paths.journal(target.name));
  const interrupted = target.format === 'sandbox' && statOrUndefined(options.state.paths.journal(target.name)) !== undefined;
  if (!record) reasons.push({ code: 'never-built', message: 'never built' });
  else {
    reasons.push(...explainChange(record.components, fingerprint.components));
    if (record.output !== target.output) reasons.push({ code: 'format', message: `output changed from ${record.output} to ${target.output}` });
    if (!out) reasons.push({ code: 'output-missing', message: 'output missing' });
    else if (interrupted) {
      reasons.push({ code: 'output-modified', message: 'an update of the sandbox was interrupted; it is written again' });
    } else if (!sameIdentity(record.identity, out.identity)) {
      reasons.push({ code: 'output-modified', message: 'output modified since build' });
      if (target.format === 'sandbox' && !out.entries) out = (await outputIdentity(target, options.index, { clockDir: options.state.paths.root })) ?? out;
      if (target.format === 'sandbox' && out.entries) {
        const saved = await readFile(options.state.paths.treeListing(target.name), 'utf8').then(
          (t) => JSON.parse(t) as TreeEntryDigest[],
          () => [] as TreeEntryDigest[],
        );
        const changes = diffTrees(saved, out.entries);
        dirty = { paths: changes.slice(0, 20).map((c) => `${c.change === 'added' ? 'A' : c.change === 'removed' ? 'D' : 'M'} ${c.path}`), count: changes.length };
        reasons[reasons.length - 1] = {
          code: 'output-modified',
          message: `sandbox modified by hand since build (${changes.length} change${changes.length === 1 ? '' : 's'}: ${changes.slice(0, 3).map((c) => c.path).join(', ')}${changes.length > 3 ? ', ...' : ''})`,
        };
      }
    }
  }
  if (reasons.length === 0 && options.force) reasons.push({ code: 'forced', message: 'rebuild forced (--force)' });
  return { name: target.name, fingerprint, record, reasons, interrupted, ...(dirty ? { dirty } : {}) };
}

/** Pins kept in memory during a run and written to orchestrator.lock as they change. */
class LockPins implements TagPins {
  #writing: Promise<void> = Promise.resolve();
  constructor(
    public lock: LockData,
    readonly path: string,
    readonly ignoreExisting: boolean,
  ) {}
  get(reference: string): Digest | undefined {
    if (this.ignoreExisting) return undefined;
    return this.lock.images[reference]?.digest;
  }
  record(reference: string, top: Digest, platform: Platform, manifest: Digest): void {
    const prev = this.lock.images[reference];
    const plat = formatPlatform(platform);
    if (prev && prev.digest === top && prev.platforms[plat] === manifest) return;
    this.lock = withLockEntry(this.lock, reference, top, plat, manifest);
    const snapshot = this.lock;
    this.#writing = this.#writing.then(() => writeLockFile(this.path, snapshot)).catch(() => undefined);
  }
  flush(): Promise<void> {
    return this.#writing;
  }
}

/**
 * `orchestrator up` (DESIGN.md 2.1, 3): builds the stale targets of `order`, dependencies first,
 * independent targets in parallel (`jobs`), stopping at the first failure unless `keepGoing`.
 * A fresh target does no work at all. State is written after each target's output.
 */
export async function runUp(options: UpOptions): Promise<Result<UpSummary, Diagnostic>> {
  const started = Date.now();
  const { project, onEvent: emit, signal } = options;
  const stateDir = new StateDir(project.dir);
  const projectLock = options.dryRun ? { ok: true as const, value: { release: async () => undefined } } : await acquireProjectLock(stateDir);
  if (!projectLock.ok) return projectLock;
  const platform = options.platform ?? DEFAULT_PLATFORM;
  const lockRead = await readLockFile(join(project.dir, LOCK_FILE_NAME));
  if (!lockRead.ok) {
    await projectLock.value.release();
    return lockRead;
  }
  const pins = new LockPins(lockRead.value, join(project.dir, LOCK_FILE_NAME), options.pull);
  options.reads?.add(join(project.dir, LOCK_FILE_NAME));
  options.reads?.add(stateDir.state);
  const state = await ProjectState.load(project.dir);
  const release = options.dryRun ? async () => undefined : await options.store.markActive();
  if (!options.dryRun) await options.store.registerProject(project.dir);
  const index = await StatIndex.load(stateDir.statIndex);
  const byName = new Map(project.targets.map((t) => [t.name, t]));
  const queue = new PQueue({ concurrency: Math.max(1, options.jobs) });
  const outcome = new Map<string, Promise<'ok' | 'failed' | 'skipped'>>();
  let stopped = false;
  const wouldBuild = new Set<string>();
  const inflight = new Map<string, Promise<void>>();
  const memo = new Map<string, Promise<string>>();
  const summary = { built: 0, fresh: 0, failed: 0, skipped: 0, stepsCached: 0 };

  // The build engine loads only when something is stale: a no-op run never pays for it.
  const resolver = async (target: string, targetOutputs: Record<string, string>): Promise<SourceResolver> =>
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
        if (line !== undefined) emit({ type: 'step-output', target, step: { kind: 'source' }, chunk: `${line}\n` });
      },
      signal,
    });

  const runTarget = async (name: string): Promise<'ok' | 'failed' | 'skipped'> => {
    const target = byName.get(name)!;
    const deps = await Promise.all(target.dependencies.map((d) => outcome.get(d) ?? Promise.resolve<'ok'>('ok')));
    const badDep = target.dependencies.find((_, i) => deps[i] !== 'ok');
    if (badDep !== undefined) {
      emit({ type: 'target-skipped', target: name, because: `dependency ${badDep} did not build` });
      summary.skipped++;
      return 'skipped';
    }
    if (stopped || signal.aborted) {
      emit({ type: 'target-skipped', target: name, because: signal.aborted ? 'interrupted' : 'an earlier target failed' });
      summary.skipped++;
      return 'skipped';
    }
    const recipe = options.recipes.get(name);
    const status = await targetStatus(target, {
      recipe,
      state,
      lock: pins.lock,
      index,
      project,
      platform,
      toolVersion: options.toolVersion,
      force: options.force,
      memo,
      ...(options.reads ? { reads: options.reads } : {}),
    });
    const reasons: StaleReason[] = [...status.reasons];
    if (options.pull && reasons.length === 0 && target.from?.kind === 'docker') reasons.push({ code: 'source', message: 'tags re-resolved (--pull)' });
    // A dry run builds nothing, so a dependent cannot see its dependency's new output: say so.
    if (options.dryRun && reasons.length === 0) for (const d of target.dependencies) if (wouldBuild.has(d)) reasons.push({ code: 'source', message: `dependency ${d} would be rebuilt` });
    if (reasons.length === 0) {
      emit({ type: 'target-fresh', target: name });
      summary.fresh++;
      return 'ok';
    }
    emit({ type: 'target-stale', target: name, reasons, dryRun: options.dryRun });
    if (options.dryRun) {
      wouldBuild.add(name);
      return 'ok';
    }
    if (status.dirty && !options.force && !options.requested.has(name)) {
      // Only needed as a source: the Singularity flow builds production images from the dev
      // sandbox as it is now, hand-made changes included.
      emit({ type: 'target-kept', target: name, changes: status.dirty.count });
      summary.fresh++;
      return 'ok';
    }
    if (status.dirty && !options.force) {
      const shownOut = relative(project.dir, target.output) || target.output;
      const more = status.dirty.count > status.dirty.paths.length ? `\n  ... and ${status.dirty.count - status.dirty.paths.length} more` : '';
      const e = error('sandbox-modified', `sandbox ${shownOut}/ was modified by hand since it was built (${status.dirty.count} change${status.dirty.count === 1 ? '' : 's'}):\n  ${status.dirty.paths.join('\n  ')}${more}`, {
        ...(target.locations.output ? { location: target.locations.output } : { location: target.locations.name }),
        hint: `move the changes into the recipe, or run 'orchestrator up --force ${name}' to discard them`,
      });
      emit({ type: 'target-failed', target: name, error: e, ms: 0 });
      summary.failed++;
      if (!options.keepGoing) stopped = true;
      return 'failed';
    }
    return queue.add(async () => {
      if (stopped || signal.aborted) {
        emit({ type: 'target-skipped', target: name, because: signal.aborted ? 'interrupted' : 'an earlier target failed' });
        summary.skipped++;
        return 'skipped' as const;
      }
      emit({ type: 'target-started', target: name });
      const t0 = Date.now();
      const r = await buildOne(target, recipe, status);
      if (!r.ok) {
        emit({ type: 'target-failed', target: name, error: r.error, ms: Date.now() - t0 });
        summary.failed++;
        if (!options.keepGoing) stopped = true;
        return 'failed' as const;
      }
      summary.built++;
      summary.stepsCached += r.value.stepsCached;
      emit({ type: 'target-done', target: name, ms: Date.now() - t0, stepsRun: r.value.stepsRun, stepsCached: r.value.stepsCached, key: r.value.key });
      return 'ok' as const;
    }) as Promise<'ok' | 'failed' | 'skipped'>;
  };

  const buildOne = async (target: Target, recipe: Recipe | undefined, status: TargetStatus): Promise<Result<{ stepsRun: number; stepsCached: number; key: string }, Diagnostic>> => {
    const outputs = nameTable(project.targets.map((t) => [t.name, t.output] as const));
    const res = await resolver(target.name, outputs);
    let source: SourceSpec | undefined;
    if (target.from) {
      const s = await res.fromRef(target.from);
      if (!s.ok) return s;
      source = s.value;
    }
    const recipeDir = target.recipe ? dirname(target.recipe) : project.dir;
    await mkdir(dirname(target.output), { recursive: true });
    const { buildTarget } = await import('../builder/build-target.js');
    const built = await buildTarget(
      {
        name: target.name,
        ...(source ? { source } : {}),
        ...(recipe ? { recipe } : {}),
        recipeDir,
        format: target.format,
        output: target.output,
        ...(target.size !== undefined ? { size: target.size } : {}),
        runTest: target.test && !options.noTest,
        noCache: options.noCache,
        ...(options.epoch !== undefined ? { epoch: options.epoch } : {}),
        // A clean sandbox from the last build is updated in place; a forced, hand-modified or
        // interrupted one is written again in full.
        ...(target.format === 'sandbox' && status.record?.lowers && !status.dirty && !status.interrupted && status.record.output === target.output
          ? { incremental: { previousLowers: status.record.lowers, journal: state.paths.journal(target.name) } }
          : {}),
        declaredInputs: target.inputs.map((p) => (p.startsWith('target:') ? (ownValue(outputs, p.slice('target:'.length)) ?? p) : join(project.dir, p))),
        platform: formatPlatform(platform),
      },
      {
        store: options.store,
        logDir: stateDir.logs(target.name),
        index,
        toolVersion: options.toolVersion,
        resolveHeader: (stage, dir) => res.header(stage, dir),
        onEvent: emit,
        inflight,
        signal,
      },
    );
    // Its output is new: what was remembered of it is not true any more.
    memo.delete(target.output);
    if (!built.ok) return built;
    // Record after the output: the fingerprint as it is now, with the pins this build made. If a
    // file it reads changed during the build, the output may match neither version: record the
    // one from before, so that the next run rebuilds instead of calling it fresh.
    const after = await targetFingerprint(target, recipe, {
      projectDir: project.dir,
      lock: pins.lock,
      platform,
      index,
      outputOf: (n) => ownValue(outputs, n),
      toolVersion: options.toolVersion,
    });
    const fp = changedWhileBuilding(status.fingerprint.components, after.components) ? status.fingerprint : after;
    const out = await outputIdentity(target, index, { clockDir: stateDir.root });
    if (!out) return fail(error('unexpected', `the output ${target.output} is missing after its build`));
    await rm(state.paths.journal(target.name), { force: true });
    if (out.entries) {
      await mkdir(dirname(state.paths.treeListing(target.name)), { recursive: true });
      await writeFile(state.paths.treeListing(target.name), JSON.stringify(out.entries));
    }
    await state.set(target.name, {
      key: fp.key,
      components: fp.components,
      output: target.output,
      identity: out.identity,
      builtAt: new Date().toISOString(),
      steps: built.value.steps.map((s) => s.key),
      references: built.value.references,
      lowers: built.value.lowers,
    });
    const stepsRun = built.value.steps.filter((s) => !s.cached && s.label.kind !== 'source').length;
    return ok({ stepsRun, stepsCached: built.value.steps.filter((s) => s.cached && s.label.kind !== 'source').length, key: fp.key });
  };

  try {
    for (const name of options.order) outcome.set(name, runTarget(name));
    await Promise.all(outcome.values());
    await queue.onIdle();
  } finally {
    await pins.flush();
    if (!options.dryRun) await index.save().catch(() => undefined);
    await projectLock.value.release();
    await release();
  }
  const result: UpSummary = { ...summary, ms: Date.now() - started, interrupted: signal.aborted };
  emit({ type: 'run-done', summary: result });
  return ok(result);
}

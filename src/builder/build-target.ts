import { chmod, chown, mkdir, open, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import { runCommand, type CommandRunner } from '../core/run-command.js';
import { unreachable } from '../core/unreachable.js';
import type { InputFilter } from '../freshness/input-filter.js';
import type { StatIndex } from '../freshness/stat-index.js';
import { inputIdentity } from '../freshness/tree-digest.js';
import { exportExt3 } from '../image/export-ext3.js';
import { exportSandbox } from '../image/export-sandbox.js';
import { exportSquashfs, type ExportSquashfsOptions, type SquashfsProgress } from '../image/export-squashfs.js';
import { DEFAULT_SQUASHFS_OPTIONS, type SquashfsOptions } from '../manifest/squashfs-options.js';
import { exportSif, type ExportSifOptions } from '../image/sif/export-sif.js';
import type { Recipe, Stage } from '../recipe/model.js';
import { scriptOf } from '../recipe/sections.js';
import type { Store } from '../store/store.js';
import { stepName, type BuildEventListener, type StepLabel } from './build-events.js';
import { prepareSource, type PreparedSource, type SourceOrigin, type SourceSpec } from './build-source.js';
import { copyXattrs } from './copy-up.js';
import type { ImageConfig } from './image-config.js';
import { LayerStack } from './layer-stack.js';
import { hostFileInputs, planSteps, type PlannedStep } from './plan-steps.js';
import { runStep, runTest } from './run-step.js';
import type { RemoteStepCache } from './remote-cache.js';
import { claimStep, type StepClaim } from './step-claims.js';
import { runStepSession } from './step-session.js';
import { nameTable } from '../core/name-table.js';
import { inChildUserNamespace } from '../core/id-map.js';
import { outputInUse, writableSessionHolder } from '../runtime/writable-lock.js';

export type OutputFormat = 'sandbox' | 'ext3' | 'squashfs' | 'sif';

export interface BuildTargetRequest {
  /** For events and logs: the target name, or the output's name for one-shot builds. */
  readonly name: string;
  /** The source; for a recipe it replaces the last stage's header source (`from:` wins). */
  readonly source?: SourceSpec;
  /** The recipe, templating applied (resolveRecipe). */
  readonly recipe?: Recipe;
  /** Folder that %files sources are relative to (the recipe's). */
  readonly recipeDir: string;
  readonly format: OutputFormat;
  readonly output: string;
  /** ext3 size in bytes. */
  readonly size?: number;
  /** How a squashfs output is written (default: our writer, gzip level 9, 128 KiB blocks). */
  readonly squashfs?: SquashfsOptions;
  /** Run %test after the build (unless --notest / `test: false`). */
  readonly runTest: boolean;
  /** Rerun every step (--no-cache). */
  readonly noCache: boolean;
  /** SOURCE_DATE_EPOCH, when set: every timestamp of the image. */
  readonly epoch?: number;
  /** Declared `inputs:` of the target (absolute paths): they key %post. */
  readonly declaredInputs?: readonly string[];
  /** What `%files` and `inputs` leave out of folders and glob matches (state, cache, outputs, `.orchestratorignore`). */
  readonly filter?: InputFilter;
  readonly platform?: string;
  /**
   * A sandbox output that is exactly what a build from `previousLowers` wrote: only the difference
   * is applied (docs/ARCHITECTURE.md, Steps). `journal` is written while the update runs, so that an interrupted
   * update is redone in full next time instead of being taken for hand-made changes.
   */
  readonly incremental?: { readonly previousLowers: readonly string[]; readonly journal: string };
}

export interface BuildTargetContext {
  readonly store: Store;
  /** Folder for this target's step logs. */
  readonly logDir: string;
  readonly index?: StatIndex;
  readonly toolVersion: string;
  /** Turns a stage's header (`Bootstrap: docker`, `From: ...`) into a source; registry access lives there. */
  readonly resolveHeader: (stage: Stage, recipeDir: string) => Promise<Result<SourceSpec, Diagnostic>>;
  readonly onEvent?: BuildEventListener;
  /**
   * Steps being made now by other builds of this run, by key: a build that needs the same step
   * waits for it instead of running it a second time (targets that share a recipe), and one that
   * failed in this run fails its other claimants at once (step-claims.ts). One map a run.
   */
  readonly inflight?: Map<string, Promise<void>>;
  /** Registries asked for steps the store lacks, and given the steps of this build (remote-cache.ts). */
  readonly remoteCache?: RemoteStepCache;
  /**
   * Run nothing (`plan --remote`): prepare the sources and plan the steps, and say of each step
   * whether the store has it, a `remoteCache` repository has it (asked, not pulled), or it would
   * run (`step-planned` events). No test, no export; the result has the steps and no output.
   */
  readonly probe?: boolean;
  readonly signal: AbortSignal;
}

export interface StepRecord {
  readonly label: StepLabel;
  readonly key: string;
  readonly cached: boolean;
  /** Pulled from a remote cache in this build (a `cached` step). */
  readonly remote?: boolean;
  readonly ms: number;
}

export interface BuildTargetResult {
  /** Key of the image content (the final stage's last step): with the format options, the target key. */
  readonly contentKey: string;
  readonly steps: readonly StepRecord[];
  /** The timestamp used for the image (seconds since the epoch). */
  readonly epoch: number;
  /** The overlay stack of the image (top first), for the next incremental sandbox update. */
  readonly lowers: readonly string[];
  /** True when a sandbox output was updated in place rather than copied. */
  readonly incremental: boolean;
  /** Every store entry the image is made of (layers, snapshots, blobs), as absolute paths, for `cache prune`. */
  readonly references: readonly string[];
  /** What the key of each step was made of, for `plan` explanations. */
  readonly components: ReadonlyArray<{ readonly label: StepLabel; readonly components: PlannedStep['components'] }>;
}

const ARCH = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** Reads the build date a metadata snapshot recorded, so a cached build keeps its timestamps. */
async function recordedEpoch(stack: LayerStack): Promise<number | undefined> {
  const e = await stack.entry('.singularity.d/labels.json');
  if (!e) return undefined;
  try {
    const labels = JSON.parse(await readFile(join(stack.layers[e.layer]!, '.singularity.d/labels.json'), 'utf8')) as Record<string, string>;
    const date = labels['org.label-schema.build-date'];
    const ms = date ? Date.parse(date) : NaN;
    return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
  } catch {
    return undefined;
  }
}

/** One buildTarget call: what it has done so far, and what its `finally` undoes. */
interface BuildRun {
  readonly request: BuildTargetRequest;
  readonly ctx: BuildTargetContext;
  readonly emit: BuildEventListener;
  readonly platform: string;
  readonly identityOptions: { readonly index?: StatIndex; readonly signal: AbortSignal; readonly filter?: InputFilter };
  readonly epochNow: number;
  readonly buildDate: string;
  readonly steps: StepRecord[];
  readonly components: Array<{ label: StepLabel; components: PlannedStep['components'] }>;
  /** Temp folders in the store, removed at the end whatever happens. */
  readonly temps: string[];
  readonly references: Set<string>;
  /** Steps this build claimed and has not released yet (released at the end whatever happens). */
  readonly claims: StepClaim[];
}

/** What the stages before the current one made, for `%files from STAGE`. */
interface StageOutputs {
  readonly lowers: Record<string, readonly string[]>;
  readonly keys: Record<string, string>;
}

/** One stage built: its overlay stack (top first), its last step's key, its source's config. */
interface BuiltStage {
  readonly lowers: readonly string[];
  readonly key: string;
  readonly config: ImageConfig | undefined;
}

/** Where a step of a stage runs: its stage, its source, what the earlier stages made. */
interface StageContext {
  readonly stage: Stage | undefined;
  readonly stageLabel: string | undefined;
  readonly isLast: boolean;
  readonly prepared: PreparedSource;
  readonly outputs: StageOutputs;
}

/**
 * Builds one target (docs/ARCHITECTURE.md, Steps): each stage's steps run on an overlay whose lowers are the
 * source and the earlier snapshots; a step whose key is in the store is not run, its snapshot is
 * mounted. Then %test on the result, then the export, which replaces the output atomically. A
 * failure anywhere leaves the previous output as it was and no temp folder in the store.
 */
export async function buildTarget(request: BuildTargetRequest, ctx: BuildTargetContext): Promise<Result<BuildTargetResult, Diagnostic>> {
  const epochNow = request.epoch ?? Math.floor(Date.now() / 1000);
  const run: BuildRun = {
    request,
    ctx,
    emit: ctx.onEvent ?? (() => undefined),
    platform: request.platform ?? `linux/${ARCH}`,
    identityOptions: { ...(ctx.index ? { index: ctx.index } : {}), signal: ctx.signal, ...(request.filter ? { filter: request.filter } : {}) },
    epochNow,
    buildDate: new Date(epochNow * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    steps: [],
    components: [],
    temps: [],
    references: new Set<string>(),
    claims: [],
  };
  if (!ctx.probe) await mkdir(ctx.logDir, { recursive: true });
  try {
    const image = await buildStages(run);
    if (!image.ok) return image;
    if (ctx.probe) {
      const { key: contentKey, lowers } = image.value;
      return ok({ contentKey, steps: run.steps, epoch: epochNow, components: run.components, references: [...run.references].sort(), lowers, incremental: false });
    }
    const epoch = request.epoch ?? (await recordedEpoch(new LayerStack(image.value.lowers))) ?? epochNow;
    const tested = await runTestStep(run, image.value);
    if (!tested.ok) return tested;
    const exported = await exportImage(run, image.value, epoch);
    if (!exported.ok) return exported;
    return ok({
      contentKey: image.value.key,
      steps: run.steps,
      epoch,
      components: run.components,
      references: [...run.references].sort(),
      lowers: image.value.lowers,
      incremental: exported.value.updatedInPlace,
    });
  } catch (e) {
    if (ctx.signal.aborted) return fail(error('interrupted', `building ${request.name} was interrupted`));
    throw e;
  } finally {
    for (const claim of run.claims) claim.release();
    for (const t of run.temps) await rm(t, { recursive: true, force: true });
  }
}

/** Every stage of the recipe in order (or the source alone): the last one is the image. */
async function buildStages(run: BuildRun): Promise<Result<BuiltStage, Diagnostic>> {
  const stages: Array<Stage | undefined> = run.request.recipe ? [...run.request.recipe.stages] : [undefined];
  const outputs: StageOutputs = { lowers: nameTable<readonly string[]>(), keys: nameTable<string>() };
  let built: BuiltStage | undefined;
  for (const [s, stage] of stages.entries()) {
    const r = await buildStage(run, stage, { index: s, count: stages.length }, outputs);
    if (!r.ok) return r;
    if (stage?.name !== undefined) {
      outputs.lowers[stage.name] = r.value.lowers;
      outputs.keys[stage.name] = r.value.key;
    }
    built = r.value;
  }
  return ok(built!);
}

/** One stage: its source, the digests of what it reads, its planned steps, each made or reused. */
async function buildStage(run: BuildRun, stage: Stage | undefined, at: { index: number; count: number }, outputs: StageOutputs): Promise<Result<BuiltStage, Diagnostic>> {
  const { request, ctx } = run;
  const isLast = at.index === at.count - 1;
  const source = await stageSource(run, stage, isLast);
  if (!source.ok) return source;
  const prepared = source.value.prepared;
  const inputs = await stageInputs(run, stage, isLast);
  // The source used, when it is not the header's: the image's labels name it (singularity-metadata.ts).
  // A from: that names the header's own source changes neither the labels nor the key.
  const given = isLast && request.source ? request.source.origin : undefined;
  const origin = given && !(stage?.header.get('bootstrap')?.value.toLowerCase() === given.bootstrap && stage.header.get('from')?.value === given.from) ? given : undefined;
  const planned = planSteps({
    stage,
    source: prepared.key,
    platform: run.platform,
    buildArgs: request.recipe?.argsUsed ?? {},
    inputDigests: inputs.files,
    stageKeys: outputs.keys,
    ...(Object.keys(inputs.declared).length > 0 ? { declaredInputs: inputs.declared } : {}),
    metadataSalt: { recipe: request.recipe?.text ?? null, version: ctx.toolVersion, stage: at.index, last: isLast, epoch: request.epoch ?? null, ...(origin ? { origin } : {}) },
  });
  const where: StageContext = { stage, stageLabel: at.count > 1 ? (stage?.name ?? `stage${at.index + 1}`) : undefined, isLast, prepared, outputs };
  let lowers: readonly string[] = prepared.lowers;
  for (const step of planned) {
    const made = await makeStep(run, step, where, lowers, origin);
    if (!made.ok) return made;
    lowers = made.value;
  }
  return ok({ lowers, key: planned.at(-1)!.key, config: prepared.config });
}

/** The source of a stage, ready to stack on: the request's for the last stage (`from:` wins), else the header's. */
async function stageSource(run: BuildRun, stage: Stage | undefined, isLast: boolean): Promise<Result<{ prepared: PreparedSource }, Diagnostic>> {
  const { request, ctx } = run;
  const started = Date.now();
  let spec: SourceSpec;
  if (isLast && request.source) spec = request.source;
  else if (stage) {
    const r = await ctx.resolveHeader(stage, request.recipeDir);
    if (!r.ok) return r;
    spec = r.value;
  } else return fail(error('no-source', `target '${request.name}' has no source`));
  const prepared = await prepareSource(spec, { store: ctx.store, ...(ctx.index ? { index: ctx.index } : {}), cwd: request.recipeDir, signal: ctx.signal });
  if (!prepared.ok) return prepared;
  for (const p of [...prepared.value.lowers, ...(prepared.value.blobs ?? [])]) if (p.startsWith(`${ctx.store.root}/`)) run.references.add(p);
  run.emit({ type: 'source-ready', target: request.name, description: prepared.value.description, ms: Date.now() - started });
  for (const w of prepared.value.warnings ?? []) run.emit({ type: 'warning', target: request.name, diagnostic: w });
  return ok({ prepared: prepared.value });
}

/** Digests of what `%files` reads (by path as written) and of what the target declares (last stage only). */
async function stageInputs(run: BuildRun, stage: Stage | undefined, isLast: boolean): Promise<{ files: Record<string, string>; declared: Record<string, string> }> {
  const files: Record<string, string> = {};
  if (stage) for (const src of hostFileInputs(stage)) files[src] = await inputIdentity(run.request.recipeDir, src, run.identityOptions);
  const declared: Record<string, string> = {};
  if (isLast) for (const p of run.request.declaredInputs ?? []) declared[p] = await inputIdentity('/', p, run.identityOptions);
  return { files, declared };
}

/**
 * One planned step: reused from the store when its snapshot is there, else run (once in the run:
 * another build making it is waited for, and a failure of it is shared). Returns the stack with
 * the step's snapshot on top.
 */
async function makeStep(run: BuildRun, step: PlannedStep, where: StageContext, lowers: readonly string[], origin: SourceOrigin | undefined): Promise<Result<readonly string[], Diagnostic>> {
  const { request, ctx } = run;
  const label: StepLabel = { kind: step.kind, ...(where.stageLabel !== undefined ? { stage: where.stageLabel } : {}), ...(step.app !== undefined ? { app: step.app } : {}) };
  run.components.push({ label, components: step.components });
  if (!step.snapshot) {
    run.steps.push({ label, key: step.key, cached: true, ms: 0 });
    return ok(lowers);
  }
  if (ctx.probe) return probeStep(run, step, label, lowers);
  let claim: StepClaim | undefined;
  if (!request.noCache && ctx.inflight) {
    const claimed = await claimStep(ctx.inflight, step.key);
    if (!claimed.ok) {
      // Failed earlier in this run, for another target: the same failure, without running it again.
      run.emit({ type: 'step-failed', target: request.name, step: label, error: claimed.error, ms: 0 });
      return claimed;
    }
    claim = claimed.value;
    run.claims.push(claim);
  }
  const snapshot = ctx.store.snapshotPath(step.key);
  const pushStep = (): void => ctx.remoteCache?.push({ key: step.key, parent: step.components.parent, kind: step.kind, snapshot });
  if (!request.noCache && (await isDir(snapshot))) {
    claim?.release();
    run.emit({ type: 'step-cached', target: request.name, step: label, key: step.key });
    run.references.add(snapshot);
    // Mark it used: `cache prune` removes the least recently used first.
    const now = new Date();
    await utimes(snapshot, now, now).catch(() => undefined);
    run.steps.push({ label, key: step.key, cached: true, ms: 0 });
    pushStep();
    return ok([snapshot, ...lowers]);
  }
  if (!request.noCache && ctx.remoteCache) {
    const t0 = Date.now();
    const hit = await ctx.remoteCache.fetch(step.key, { signal: ctx.signal, label: stepName(label) });
    if (hit && (await isDir(snapshot))) {
      claim?.release();
      run.emit({ type: 'step-cached', target: request.name, step: label, key: step.key, remote: { where: hit.where, bytes: hit.bytes } });
      for (const w of hit.warnings ?? []) run.emit({ type: 'warning', target: request.name, diagnostic: w });
      run.references.add(snapshot);
      run.steps.push({ label, key: step.key, cached: true, remote: true, ms: Date.now() - t0 });
      pushStep();
      return ok([snapshot, ...lowers]);
    }
  }
  ctx.signal.throwIfAborted();
  run.emit({ type: 'step-started', target: request.name, step: label, key: step.key });
  const t0 = Date.now();
  const made = await executeStep(run, step, label, where, lowers, origin);
  if (!made.ok) {
    // An interrupt is no verdict on the step: the next claimant may run it.
    claim?.release(made.error.reason === 'interrupted' ? undefined : made.error);
    run.emit({ type: 'step-failed', target: request.name, step: label, error: made.error, ms: Date.now() - t0 });
    return made;
  }
  const published = await publishSnapshot(run, made.value, snapshot);
  claim?.release();
  if (published === snapshot) pushStep();
  const ms = Date.now() - t0;
  run.emit({ type: 'step-done', target: request.name, step: label, key: step.key, ms });
  run.steps.push({ label, key: step.key, cached: false, ms });
  return ok([published, ...lowers]);
}

/** A probe's step (BuildTargetContext.probe): where it would come from, said and recorded; nothing runs. */
async function probeStep(run: BuildRun, step: PlannedStep, label: StepLabel, lowers: readonly string[]): Promise<Result<readonly string[], Diagnostic>> {
  const { request, ctx } = run;
  const snapshot = ctx.store.snapshotPath(step.key);
  const local = !request.noCache && (await isDir(snapshot));
  const remote = !local && !request.noCache ? await ctx.remoteCache?.has(step.key, { signal: ctx.signal }) : undefined;
  const from = local ? 'cache' : remote ? 'remote' : 'build';
  run.emit({ type: 'step-planned', target: request.name, step: label, key: step.key, from, ...(remote ? { where: remote.where } : {}) });
  run.steps.push({ label, key: step.key, cached: from !== 'build', ...(remote ? { remote: true } : {}), ms: 0 });
  return ok(local ? [snapshot, ...lowers] : lowers);
}

/** Runs a step into a fresh upper folder and checks that what it read did not change meanwhile; returns the upper. */
async function executeStep(
  run: BuildRun,
  step: PlannedStep,
  label: StepLabel,
  where: StageContext,
  lowers: readonly string[],
  origin: SourceOrigin | undefined,
): Promise<Result<string, Diagnostic>> {
  const { request, ctx } = run;
  const tmp = await ctx.store.makeTempDir(step.kind);
  run.temps.push(tmp);
  const [upper, work, session, scratch] = ['upper', 'work', 'session', 'scratch'].map((d) => join(tmp, d)) as [string, string, string, string];
  for (const d of [upper, work, session, scratch]) {
    await mkdir(d);
    await chmod(d, 0o755);
  }
  await copyUpRoot(new LayerStack(lowers), upper);
  const logFile = join(ctx.logDir, `${String(run.steps.length + 1).padStart(2, '0')}-${where.stageLabel ? `${where.stageLabel}-` : ''}${step.kind}${step.app ? `-${step.app}` : ''}.log`);
  await rm(logFile, { force: true });
  const r = await runStep(step, {
    lowers,
    upper,
    work,
    session,
    scratch,
    recipeDir: request.recipeDir,
    imageConfig: where.prepared.config,
    stageLowers: where.outputs.lowers,
    metadata: {
      ...(where.stage ? { stage: where.stage } : {}),
      ...(request.recipe ? { recipeText: request.recipe.text } : {}),
      buildDate: run.buildDate,
      toolVersion: ctx.toolVersion,
      arch: ARCH,
      ...(origin ? { source: origin } : {}),
    },
    logFile,
    onOutput: (chunk) => run.emit({ type: 'step-output', target: request.name, step: label, chunk: chunk.toString('utf8') }),
    ...(request.filter ? { filter: request.filter } : {}),
    signal: ctx.signal,
  });
  if (!r.ok) return r;
  // The step's key holds the digests of the files it read. A file that changed while the step
  // ran would make the snapshot lie about its key, for every later build: check again.
  for (const [src, digest] of Object.entries(step.components.inputs ?? {})) {
    const now = await inputIdentity(step.kind === 'post' ? '/' : request.recipeDir, src, run.identityOptions);
    if (now === digest) continue;
    return fail(
      error('input-changed-during-build', `${src} changed while the ${stepName(label)} step was using it; nothing of this step was cached`, {
        ...(step.location ? { location: step.location } : {}),
        hint: 'run the build again once the file stays put',
      }),
    );
  }
  return ok(upper);
}

/**
 * The upper's root as overlayfs would copy the image's root up (the merged root takes its mode,
 * owner and xattrs from the upper): exactly as in the image, whatever the umask.
 */
async function copyUpRoot(stack: LayerStack, upper: string): Promise<void> {
  const root = await stack.entry('');
  if (!root) return;
  await chown(upper, root.stats.uid, root.stats.gid);
  await chmod(upper, root.stats.mode & 0o7777);
  copyXattrs(stack.layers[root.layer]!, upper);
  await utimes(upper, root.stats.atime, root.stats.mtime);
}

/** Publishes a step's upper as its snapshot; "already there" (another build made it) is success. Returns the snapshot's path. */
async function publishSnapshot(run: BuildRun, upper: string, snapshot: string): Promise<string> {
  // --no-cache with the snapshot there: the fresh upper is used, the store's is left alone.
  if (run.request.noCache && (await isDir(snapshot))) return upper;
  try {
    await rename(upper, snapshot);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw e;
  }
  run.references.add(snapshot);
  return snapshot;
}

/** %test on the finished image, unless the target or the command turned it off. */
async function runTestStep(run: BuildRun, image: BuiltStage): Promise<Result<void, Diagnostic>> {
  const { request, ctx } = run;
  const lastStage = request.recipe?.stages.at(-1);
  const test = lastStage ? scriptOf(lastStage, 'test') : undefined;
  if (!request.runTest || !test) return ok(undefined);
  run.emit({ type: 'test-started', target: request.name });
  const t0 = Date.now();
  const tmp = await ctx.store.makeTempDir('test');
  run.temps.push(tmp);
  await mkdir(join(tmp, 'session'));
  const r = await runTest(
    {
      lowers: image.lowers,
      session: join(tmp, 'session'),
      scratch: tmp,
      logFile: join(ctx.logDir, 'test.log'),
      onOutput: (chunk) => run.emit({ type: 'step-output', target: request.name, step: { kind: 'test' }, chunk: chunk.toString('utf8') }),
      signal: ctx.signal,
      imageConfig: image.config,
    },
    test.sections[0]?.location,
  );
  if (!r.ok) return r;
  run.emit({ type: 'test-done', target: request.name, ms: Date.now() - t0 });
  return ok(undefined);
}

/** Exports the merged view, read-only inside a mount session, to the output in its format. */
async function exportImage(run: BuildRun, image: BuiltStage, epoch: number): Promise<Result<{ updatedInPlace: boolean }, Diagnostic>> {
  const { request, ctx } = run;
  run.emit({ type: 'export-started', target: request.name });
  const t0 = Date.now();
  // The scratch folder is made when first needed: our squashfs writer needs none.
  const tmp = ctx.store.tempPath('export');
  let made: Promise<void> | undefined;
  const makeTmp = (): Promise<void> =>
    (made ??= (async () => {
      run.temps.push(tmp);
      await mkdir(join(tmp, 'session'), { recursive: true });
    })());
  const session = join(tmp, 'session');
  const root = join(session, 'root');
  const runInView: CommandRunner = async (file, args, options = {}) => {
    await makeTmp();
    return runStepSession({
      ops: [
        { op: 'session', target: session, data: 'size=1m,mode=0755' },
        { op: 'mkdir', path: root },
        { op: 'overlay', target: root, lowers: image.lowers },
      ],
      command: [file, ...args],
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...(options.env as Record<string, string> | undefined) },
      logFile: join(ctx.logDir, 'export.log'),
      ...(options.onOutput ? { onOutput: (c: Buffer) => options.onOutput!(c, 'stdout') } : {}),
      signal: ctx.signal,
    });
  };
  // Our squashfs writer merges the layers itself: it runs directly, its messages to the same log.
  const runLogged: CommandRunner = async (file, args, options = {}) => {
    const log = await open(join(ctx.logDir, 'export.log'), 'a');
    const writes: Promise<unknown>[] = [];
    try {
      return await runCommand(file, args, {
        ...options,
        onOutput: (chunk, stream) => {
          writes.push(log.write(chunk));
          options.onOutput?.(chunk, stream);
        },
      });
    } finally {
      await Promise.allSettled(writes);
      await log.close();
    }
  };
  // A writable session opened while the steps ran: its image is not replaced under it.
  const holder = writableSessionHolder(request.output);
  if (holder) return fail(outputInUse(request.format === 'sandbox' ? 'sandbox' : 'image', `${request.output}${request.format === 'sandbox' ? '/' : ''}`, holder));
  await mkdir(join(request.output, '..'), { recursive: true });
  let exported: Result<unknown, Diagnostic>;
  let updatedInPlace = false;
  let last: SquashfsProgress | undefined;
  switch (request.format) {
    case 'squashfs':
    case 'sif': {
      const o = request.squashfs ?? DEFAULT_SQUASHFS_OPTIONS;
      const ours = o.writer === 'orchestrator';
      // The writer marks the block cache entries it uses from now on: cache prune keeps them.
      if (ours) run.references.add(ctx.store.blockUseMark(Date.now() - 2000));
      const squashfs = {
        writer: o.writer,
        compression: o.compression,
        ...(o.level !== undefined ? { level: o.level } : {}),
        blockSize: o.blockSize,
        ...(ours ? { blockCache: ctx.store.blocksDir } : {}),
        onProgress: (p: SquashfsProgress) => {
          last = p;
          run.emit({ type: 'export-progress', target: request.name, phase: p.phase, files: p.files, filesTotal: p.filesTotal, bytes: p.bytes, bytesTotal: p.bytesTotal, compressedBytes: p.compressed, reusedBytes: p.reused });
        },
      };
      // Our writer merges the layers itself, run directly (no mount session), and remembers the
      // listing of the store's, which never change under their path. Without layers a writer
      // reads the merged view mounted in a session.
      type Layered = Pick<ExportSquashfsOptions, 'layers' | 'overlayXattrs'>;
      const layered: Layered | undefined = ours
        ? { layers: image.lowers.map((path) => ({ path, stable: inStore(path, ctx.store.root) })), overlayXattrs: inChildUserNamespace() ? 'user' : 'trusted' }
        : undefined;
      const write = (layers: Layered | undefined): Promise<Result<unknown, Diagnostic>> =>
        request.format === 'sif'
          ? makeTmp().then(() => exportSifImage(run, image, { root, tmp, epoch, runInView: layers ? runLogged : runInView, squashfs: { ...squashfs, ...layers } }))
          : exportSquashfs({ source: root, output: request.output, epoch, ...squashfs, ...layers, run: layers ? runLogged : runInView, signal: ctx.signal });
      exported = await write(layered);
      // Layers our writer cannot merge (overlayfs redirects or metacopy, which this tool's steps
      // do not make): the same writer reads the mounted view instead.
      if (!exported.ok && exported.error.reason === 'squashfs-layers-unmergeable') exported = await write(undefined);
      break;
    }
    case 'ext3':
      exported = await exportExt3({
        source: root,
        output: request.output,
        ...(request.size !== undefined ? { size: request.size } : {}),
        seed: image.key,
        epoch,
        run: (file, args, options = {}) =>
          runInView(file, args, { ...options, env: { ...(options.env ?? {}), ...(file === 'mkfs.ext3' ? { E2FSPROGS_FAKE_TIME: String(epoch) } : {}) } }),
        signal: ctx.signal,
      });
      break;
    case 'sandbox': {
      const delta = request.incremental ? await updateSandbox(request.output, request.incremental, image.lowers, ctx.store.root, ctx.signal) : undefined;
      if (delta) {
        updatedInPlace = true;
        exported = ok(delta);
      } else exported = await exportSandbox({ source: root, output: request.output, run: runInView, signal: ctx.signal });
      break;
    }
    default:
      return unreachable(request.format);
  }
  if (!exported.ok) return exported;
  const squashfs = last ? { squashfs: { compressedBytes: last.compressed, reusedBytes: last.reused } } : {};
  run.emit({ type: 'export-done', target: request.name, ms: Date.now() - t0, ...(updatedInPlace ? { updatedInPlace } : {}), ...squashfs });
  return ok({ updatedInPlace });
}

/** The `sif` format: the squashfs export wrapped in a SIF (src/image/sif/export-sif.ts). */
function exportSifImage(
  run: BuildRun,
  image: BuiltStage,
  at: { root: string; tmp: string; epoch: number; runInView: CommandRunner; squashfs: NonNullable<ExportSifOptions['squashfs']> },
): Promise<Result<unknown, Diagnostic>> {
  return exportSif({
    source: at.root,
    output: run.request.output,
    epoch: at.epoch,
    tempDir: at.tmp,
    // The platform's architecture ("linux/arm64/v8" → arm64): OCI and SIF both use Go's names.
    ...(run.platform.split('/')[1] ? { arch: run.platform.split('/')[1]! } : {}),
    ...(image.config !== undefined ? { ociConfig: image.config } : {}),
    squashfs: at.squashfs,
    run: at.runInView,
    signal: run.ctx.signal,
  });
}

/** Only the store's layers and snapshots never change under their path (not a local folder used as a source). */
function inStore(path: string, storeRoot: string): boolean {
  return path.startsWith(`${storeRoot}/`);
}

/**
 * Applies only the difference to a sandbox that holds the previous build, under a journal. Returns
 * undefined when that cannot be done (no output, a layer of the previous build is gone from the
 * cache, nothing shared): the caller then copies the whole image.
 */
async function updateSandbox(
  output: string,
  incremental: NonNullable<BuildTargetRequest['incremental']>,
  lowers: readonly string[],
  storeRoot: string,
  signal: AbortSignal,
): Promise<{ changed: number } | undefined> {
  if (!(await isDir(output))) return undefined;
  // Only the store's layers and snapshots never change under a path; a local folder as a source
  // (a sandbox, another target's output) may have, so it always means a full copy.
  if (!incremental.previousLowers.every((p) => inStore(p, storeRoot)) || !lowers.every((p) => inStore(p, storeRoot))) return undefined;
  for (const l of incremental.previousLowers) if (!(await isDir(l))) return undefined;
  await mkdir(join(incremental.journal, '..'), { recursive: true });
  await writeFile(incremental.journal, JSON.stringify({ output, lowers, started: new Date().toISOString() }) + '\n');
  const { applySandboxDelta } = await import('./sandbox-delta.js');
  const r = await applySandboxDelta({ sandbox: output, oldLowers: incremental.previousLowers, newLowers: lowers, signal });
  // Only a finished update (or none at all) clears the journal; an exception or an abort leaves it.
  await rm(incremental.journal, { force: true });
  return r;
}

import { mkdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';
import type { CommandRunner } from '../core/run-command.js';
import { unreachable } from '../core/unreachable.js';
import type { StatIndex } from '../freshness/stat-index.js';
import { inputIdentity } from '../freshness/tree-digest.js';
import { exportExt3 } from '../image/export-ext3.js';
import { exportSandbox } from '../image/export-sandbox.js';
import { exportSquashfs } from '../image/export-squashfs.js';
import type { Recipe, Stage } from '../recipe/model.js';
import { scriptOf } from '../recipe/sections.js';
import type { Store } from '../store/store.js';
import { stepName, type BuildEventListener, type StepLabel } from './build-events.js';
import { prepareSource, type SourceSpec } from './build-source.js';
import type { ImageConfig } from './image-config.js';
import { LayerStack } from './layer-stack.js';
import { hostFileInputs, planSteps, type PlannedStep } from './plan-steps.js';
import { runStep, runTest } from './run-step.js';
import { runStepSession } from './step-session.js';
import { nameTable } from '../core/name-table.js';

export type OutputFormat = 'sandbox' | 'ext3' | 'squashfs';

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
  /** Run %test after the build (unless --notest / `test: false`). */
  readonly runTest: boolean;
  /** Rerun every step (--no-cache). */
  readonly noCache: boolean;
  /** SOURCE_DATE_EPOCH, when set: every timestamp of the image. */
  readonly epoch?: number;
  /** Declared `inputs:` of the target (absolute paths): they key %post. */
  readonly declaredInputs?: readonly string[];
  readonly platform?: string;
  /**
   * A sandbox output that is exactly what a build from `previousLowers` wrote: only the difference
   * is applied (DESIGN.md 3.2). `journal` is written while the update runs, so that an interrupted
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
   * Steps being made now by other builds of this process, by key: a build that needs the same
   * step waits for it instead of running it a second time (targets that share a recipe).
   */
  readonly inflight?: Map<string, Promise<void>>;
  readonly signal: AbortSignal;
}

export interface StepRecord {
  readonly label: StepLabel;
  readonly key: string;
  readonly cached: boolean;
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

/**
 * Builds one target (DESIGN.md 3.1, 3.2): each stage's steps run on an overlay whose lowers are the
 * source and the earlier snapshots; a step whose key is in the store is not run, its snapshot is
 * mounted. Then %test on the result, then the export, which replaces the output atomically. A
 * failure anywhere leaves the previous output as it was and no temp folder in the store.
 */
export async function buildTarget(request: BuildTargetRequest, ctx: BuildTargetContext): Promise<Result<BuildTargetResult, Diagnostic>> {
  const platform = request.platform ?? `linux/${ARCH}`;
  const steps: StepRecord[] = [];
  const components: Array<{ label: StepLabel; components: PlannedStep['components'] }> = [];
  const temps: string[] = [];
  const references = new Set<string>();
  const claims: Array<() => void> = [];
  const emit = ctx.onEvent ?? (() => undefined);
  await mkdir(ctx.logDir, { recursive: true });
  const identityOptions = { ...(ctx.index ? { index: ctx.index } : {}), signal: ctx.signal };
  const epochNow = request.epoch ?? Math.floor(Date.now() / 1000);
  const buildDate = new Date(epochNow * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

  try {
    const stages: Array<Stage | undefined> = request.recipe ? [...request.recipe.stages] : [undefined];
    const stageLowers = nameTable<readonly string[]>();
    const stageKeys = nameTable<string>();
    let finalLowers: readonly string[] = [];
    let finalKey = '';
    let finalConfig: ImageConfig | undefined;

    for (let s = 0; s < stages.length; s++) {
      const stage = stages[s];
      const isLast = s === stages.length - 1;
      const stageLabel = stages.length > 1 ? (stage?.name ?? `stage${s + 1}`) : undefined;
      // Source of this stage.
      const started = Date.now();
      let spec: SourceSpec;
      if (isLast && request.source) spec = request.source;
      else if (stage) {
        const r = await ctx.resolveHeader(stage, request.recipeDir);
        if (!r.ok) return r;
        spec = r.value;
      } else return fail(error('no-source', `target '${request.name}' has no source`));
      const prepared = await prepareSource(spec, {
        store: ctx.store,
        ...(ctx.index ? { index: ctx.index } : {}),
        cwd: request.recipeDir,
        signal: ctx.signal,
      });
      if (!prepared.ok) return prepared;
      for (const p of [...prepared.value.lowers, ...(prepared.value.blobs ?? [])]) if (p.startsWith(`${ctx.store.root}/`)) references.add(p);
      emit({ type: 'source-ready', target: request.name, description: prepared.value.description, ms: Date.now() - started });

      // Hash what %files reads and what the target declares.
      const inputDigests: Record<string, string> = {};
      if (stage) {
        for (const src of hostFileInputs(stage)) {
          inputDigests[src] = await inputIdentity(request.recipeDir, src, identityOptions);
        }
      }
      const declared: Record<string, string> = {};
      if (isLast) for (const p of request.declaredInputs ?? []) declared[p] = await inputIdentity('/', p, identityOptions);

      const planned = planSteps({
        stage,
        source: prepared.value.key,
        platform,
        buildArgs: request.recipe?.argsUsed ?? {},
        inputDigests,
        stageKeys,
        ...(Object.keys(declared).length > 0 ? { declaredInputs: declared } : {}),
        metadataSalt: { recipe: request.recipe?.text ?? null, version: ctx.toolVersion, stage: s, last: isLast, epoch: request.epoch ?? null },
      });

      let lowers: string[] = [...prepared.value.lowers];
      for (const step of planned) {
        const label: StepLabel = { kind: step.kind, ...(stageLabel !== undefined ? { stage: stageLabel } : {}), ...(step.app !== undefined ? { app: step.app } : {}) };
        components.push({ label, components: step.components });
        if (!step.snapshot) {
          steps.push({ label, key: step.key, cached: true, ms: 0 });
          continue;
        }
        const snapshot = ctx.store.snapshotPath(step.key);
        // Another target of this run may be making the same step right now: wait for it, then
        // claim the step before anything else can (no await between the check and the claim).
        if (!request.noCache && ctx.inflight) {
          for (let pending = ctx.inflight.get(step.key); pending; pending = ctx.inflight.get(step.key)) await pending;
          let release!: () => void;
          ctx.inflight.set(step.key, new Promise<void>((resolve) => (release = resolve)));
          claims.push(() => {
            ctx.inflight!.delete(step.key);
            release();
          });
        }
        if (!request.noCache && (await isDir(snapshot))) {
          claims.pop()?.();
          emit({ type: 'step-cached', target: request.name, step: label, key: step.key });
          references.add(snapshot);
          // Mark it used: `cache prune` removes the least recently used first.
          const now = new Date();
          await utimes(snapshot, now, now).catch(() => undefined);
          steps.push({ label, key: step.key, cached: true, ms: 0 });
          lowers = [snapshot, ...lowers];
          continue;
        }
        ctx.signal.throwIfAborted();
        emit({ type: 'step-started', target: request.name, step: label, key: step.key });
        const t0 = Date.now();
        const tmp = await ctx.store.makeTempDir(step.kind);
        temps.push(tmp);
        const upper = join(tmp, 'upper');
        const work = join(tmp, 'work');
        const session = join(tmp, 'session');
        const scratch = join(tmp, 'scratch');
        for (const d of [upper, work, session, scratch]) await mkdir(d, { mode: 0o755 });
        // The upper's root keeps the image root's mode (overlayfs takes it from the upper).
        const rootEntry = await new LayerStack(lowers).entry('');
        if (rootEntry) await import('node:fs/promises').then((fs) => fs.chmod(upper, rootEntry.stats.mode & 0o7777));
        const logFile = join(ctx.logDir, `${String(steps.length + 1).padStart(2, '0')}-${stageLabel ? `${stageLabel}-` : ''}${step.kind}${step.app ? `-${step.app}` : ''}.log`);
        await rm(logFile, { force: true });
        const r = await runStep(step, {
          lowers,
          upper,
          work,
          session,
          scratch,
          recipeDir: request.recipeDir,
          imageConfig: prepared.value.config,
          stageLowers,
          metadata: {
            ...(stage ? { stage } : {}),
            ...(request.recipe ? { recipeText: request.recipe.text } : {}),
            buildDate,
            toolVersion: ctx.toolVersion,
            arch: ARCH,
          },
          logFile,
          onOutput: (chunk) => emit({ type: 'step-output', target: request.name, step: label, chunk: chunk.toString('utf8') }),
          signal: ctx.signal,
        });
        if (!r.ok) {
          emit({ type: 'step-failed', target: request.name, step: label, error: r.error, ms: Date.now() - t0 });
          return r;
        }
        // The step's key holds the digests of the files it read. A file that changed while the
        // step ran would make the snapshot lie about its key, for every later build: check again.
        for (const [src, digest] of Object.entries(step.components.inputs ?? {})) {
          const now = await inputIdentity(step.kind === 'post' ? '/' : request.recipeDir, src, identityOptions);
          if (now === digest) continue;
          const e = error('input-changed-during-build', `${src} changed while the ${stepName(label)} step was using it; nothing of this step was cached`, {
            ...(step.location ? { location: step.location } : {}),
            hint: 'run the build again once the file stays put',
          });
          emit({ type: 'step-failed', target: request.name, step: label, error: e, ms: Date.now() - t0 });
          return fail(e);
        }
        // Publish the snapshot; "already there" (another build made it) is success.
        let published = upper;
        if (!request.noCache || !(await isDir(snapshot))) {
          try {
            await rename(upper, snapshot);
            published = snapshot;
            references.add(snapshot);
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw e;
            published = snapshot;
            references.add(snapshot);
          }
        }
        lowers = [published, ...lowers];
        claims.pop()?.();
        const ms = Date.now() - t0;
        emit({ type: 'step-done', target: request.name, step: label, key: step.key, ms });
        steps.push({ label, key: step.key, cached: false, ms });
      }
      const last = planned.at(-1)!;
      if (stage?.name !== undefined) {
        stageLowers[stage.name] = lowers;
        stageKeys[stage.name] = last.key;
      }
      if (isLast) {
        finalLowers = lowers;
        finalKey = last.key;
        finalConfig = prepared.value.config;
      }
    }

    const finalStack = new LayerStack(finalLowers);
    const epoch = request.epoch ?? (await recordedEpoch(finalStack)) ?? epochNow;

    // %test on the finished image.
    const lastStage = stages.at(-1);
    const test = lastStage ? scriptOf(lastStage, 'test') : undefined;
    if (request.runTest && test) {
      emit({ type: 'test-started', target: request.name });
      const t0 = Date.now();
      const tmp = await ctx.store.makeTempDir('test');
      temps.push(tmp);
      await mkdir(join(tmp, 'session'));
      const r = await runTest(
        {
          lowers: finalLowers,
          session: join(tmp, 'session'),
          scratch: tmp,
          logFile: join(ctx.logDir, 'test.log'),
          onOutput: (chunk) => emit({ type: 'step-output', target: request.name, step: { kind: 'test' }, chunk: chunk.toString('utf8') }),
          signal: ctx.signal,
          imageConfig: finalConfig,
        },
        test.sections[0]?.location,
      );
      if (!r.ok) return r;
      emit({ type: 'test-done', target: request.name, ms: Date.now() - t0 });
    }

    // Export from the merged view, read-only, inside a mount session.
    emit({ type: 'export-started', target: request.name });
    const t0 = Date.now();
    const tmp = await ctx.store.makeTempDir('export');
    temps.push(tmp);
    const session = join(tmp, 'session');
    await mkdir(session);
    const root = join(session, 'root');
    const run: CommandRunner = (file, args, options = {}) =>
      runStepSession({
        ops: [
          { op: 'session', target: session, data: 'size=1m,mode=0755' },
          { op: 'mkdir', path: root },
          { op: 'overlay', target: root, lowers: finalLowers },
        ],
        command: [file, ...args],
        env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...(options.env as Record<string, string> | undefined) },
        logFile: join(ctx.logDir, 'export.log'),
        ...(options.onOutput ? { onOutput: (c: Buffer) => options.onOutput!(c, 'stdout') } : {}),
        signal: ctx.signal,
      });
    await mkdir(join(request.output, '..'), { recursive: true });
    let exported: Result<unknown, Diagnostic>;
    let updatedInPlace = false;
    switch (request.format) {
      case 'squashfs':
        exported = await exportSquashfs({ source: root, output: request.output, epoch, run, signal: ctx.signal });
        break;
      case 'ext3':
        exported = await exportExt3({
          source: root,
          output: request.output,
          ...(request.size !== undefined ? { size: request.size } : {}),
          seed: finalKey,
          epoch,
          run: (file, args, options = {}) =>
            run(file, args, { ...options, env: { ...(options.env ?? {}), ...(file === 'mkfs.ext3' ? { E2FSPROGS_FAKE_TIME: String(epoch) } : {}) } }),
          signal: ctx.signal,
        });
        break;
      case 'sandbox': {
        const delta = request.incremental ? await updateSandbox(request.output, request.incremental, finalLowers, ctx.store.root, ctx.signal) : undefined;
        if (delta) {
          updatedInPlace = true;
          exported = ok(delta);
        } else exported = await exportSandbox({ source: root, output: request.output, run, signal: ctx.signal });
        break;
      }
      default:
        return unreachable(request.format);
    }
    if (!exported.ok) return exported;
    emit({ type: 'export-done', target: request.name, ms: Date.now() - t0, ...(updatedInPlace ? { updatedInPlace } : {}) });
    return ok({ contentKey: finalKey, steps, epoch, components, references: [...references].sort(), lowers: finalLowers, incremental: updatedInPlace });
  } catch (e) {
    if (ctx.signal.aborted) return fail(error('interrupted', `building ${request.name} was interrupted`));
    throw e;
  } finally {
    for (const release of claims) release();
    for (const t of temps) await rm(t, { recursive: true, force: true });
  }
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
  const inStore = (p: string) => p.startsWith(`${storeRoot}/`);
  if (!incremental.previousLowers.every(inStore) || !lowers.every(inStore)) return undefined;
  for (const l of incremental.previousLowers) if (!(await isDir(l))) return undefined;
  await mkdir(join(incremental.journal, '..'), { recursive: true });
  await writeFile(incremental.journal, JSON.stringify({ output, lowers, started: new Date().toISOString() }) + '\n');
  const { applySandboxDelta } = await import('./sandbox-delta.js');
  const r = await applySandboxDelta({ sandbox: output, oldLowers: incremental.previousLowers, newLowers: lowers, signal });
  // Only a finished update (or none at all) clears the journal; an exception or an abort leaves it.
  await rm(incremental.journal, { force: true });
  return r;
}

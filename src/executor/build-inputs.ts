import { dirname, join } from 'node:path';
import type { SourceSpec } from '../builder/build-source.js';
import type { BuildTargetContext, BuildTargetRequest } from '../builder/build-target.js';
import type { Diagnostic } from '../core/diagnostic.js';
import { nameTable, ownValue } from '../core/name-table.js';
import { ok, type Result } from '../core/result.js';
import type { SourceResolver } from '../builder/source-resolver.js';
import type { RemoteStepCache } from '../builder/remote-cache.js';
import type { InputFilter } from '../freshness/input-filter.js';
import type { StatIndex } from '../freshness/stat-index.js';
import type { Project, Target } from '../manifest/project.js';
import type { Recipe } from '../recipe/model.js';
import type { Platform } from '../registry/media-types.js';
import { formatPlatform } from '../registry/platform.js';
import type { ProjectState } from '../state/project-state.js';
import type { Store } from '../store/store.js';
import type { LockPins } from './lock-pins.js';
import type { UpEventListener } from './up-events.js';

/** What building one target needs of the run it is part of. */
export interface BuildContext {
  readonly project: Project;
  readonly state: ProjectState;
  readonly index: StatIndex;
  readonly pins: LockPins;
  readonly platform: Platform;
  readonly store: Store;
  readonly toolVersion: string;
  readonly noCache: boolean;
  readonly noTest: boolean;
  readonly epoch?: number;
  readonly resolver: (target: string, targetOutputs: Record<string, string>) => Promise<SourceResolver>;
  /** Steps being built now, shared by the run's targets (buildTarget). */
  readonly inflight: Map<string, Promise<void>>;
  /** Registries of the remote step cache (`--cache-from`, `--cache-to`, `cache.remote`). */
  readonly remoteCache?: RemoteStepCache;
  /** Digests remembered during the run (targetFingerprint). */
  readonly memo: Map<string, Promise<string>>;
  /** What is never read as an input: the state folder, the cache, every output; .orchestratorignore. */
  readonly filter: InputFilter;
  readonly emit: UpEventListener;
  readonly signal: AbortSignal;
}

/** What `buildTarget` is given for one target, by `up` (build-one.ts) and `plan --remote` (probe-one.ts) alike. */
export interface BuildInputs {
  readonly request: BuildTargetRequest;
  /** The context without what only one of them gives (`inflight`, `remoteCache`, `probe`). */
  readonly context: Omit<BuildTargetContext, 'inflight' | 'remoteCache' | 'probe'>;
  /** Every target's output by name (a `target:` input, a `from: target:`). */
  readonly outputs: Record<string, string>;
}

/**
 * The request and context of one target's build: its `from:` resolved, its fields and the run's
 * options turned into `buildTarget`'s request. One place, so that a build and its probe cannot
 * differ in what they are given.
 */
export async function buildInputs(ctx: BuildContext, target: Target, recipe: Recipe | undefined): Promise<Result<BuildInputs, Diagnostic>> {
  const { project } = ctx;
  const outputs = nameTable(project.targets.map((t) => [t.name, t.output] as const));
  const res = await ctx.resolver(target.name, outputs);
  let source: SourceSpec | undefined;
  if (target.from) {
    const s = await res.fromRef(target.from);
    if (!s.ok) return s;
    source = s.value;
  }
  return ok({
    request: {
      name: target.name,
      ...(source ? { source } : {}),
      ...(recipe ? { recipe } : {}),
      recipeDir: target.recipe ? dirname(target.recipe) : project.dir,
      format: target.format,
      output: target.output,
      ...(target.size !== undefined ? { size: target.size } : {}),
      ...(target.squashfs !== undefined ? { squashfs: target.squashfs } : {}),
      runTest: target.test && !ctx.noTest,
      noCache: ctx.noCache,
      ...(ctx.epoch !== undefined ? { epoch: ctx.epoch } : {}),
      filter: ctx.filter,
      declaredInputs: target.inputs.map((p) => (p.startsWith('target:') ? (ownValue(outputs, p.slice('target:'.length)) ?? p) : join(project.dir, p))),
      platform: formatPlatform(ctx.platform),
    },
    context: {
      store: ctx.store,
      logDir: ctx.state.paths.logs(target.name),
      index: ctx.index,
      toolVersion: ctx.toolVersion,
      resolveHeader: (stage, dir) => res.header(stage, dir),
      onEvent: ctx.emit,
      signal: ctx.signal,
    },
    outputs,
  });
}

import { dirname, join } from 'node:path';
import type { SourceSpec } from '../builder/build-source.js';
import type { Diagnostic } from '../core/diagnostic.js';
import { nameTable, ownValue } from '../core/name-table.js';
import { ok, type Result } from '../core/result.js';
import type { Target } from '../manifest/project.js';
import type { Recipe } from '../recipe/model.js';
import { formatPlatform } from '../registry/platform.js';
import type { RemoteStepCache } from '../builder/remote-cache.js';
import type { BuildContext } from './build-one.js';

/**
 * `plan --remote` for one stale target: its sources prepared and its steps planned as `up` would
 * (a registry base not in the cache yet is pulled into it, as `up` would first), then each step
 * said to come from the store, from a cache-from repository (asked, not pulled), or to run
 * (`step-planned` events). Nothing runs, no output or state is written.
 */
export async function probeOne(ctx: BuildContext, target: Target, recipe: Recipe | undefined, remoteCache: RemoteStepCache): Promise<Result<void, Diagnostic>> {
  const { project } = ctx;
  const outputs = nameTable(project.targets.map((t) => [t.name, t.output] as const));
  const res = await ctx.resolver(target.name, outputs);
  let source: SourceSpec | undefined;
  if (target.from) {
    const s = await res.fromRef(target.from);
    if (!s.ok) return s;
    source = s.value;
  }
  const { buildTarget } = await import('../builder/build-target.js');
  const probed = await buildTarget(
    {
      name: target.name,
      ...(source ? { source } : {}),
      ...(recipe ? { recipe } : {}),
      recipeDir: target.recipe ? dirname(target.recipe) : project.dir,
      format: target.format,
      output: target.output,
      runTest: false,
      noCache: ctx.noCache,
      ...(ctx.epoch !== undefined ? { epoch: ctx.epoch } : {}),
      filter: ctx.filter,
      declaredInputs: target.inputs.map((p) => (p.startsWith('target:') ? (ownValue(outputs, p.slice('target:'.length)) ?? p) : join(project.dir, p))),
      platform: formatPlatform(ctx.platform),
    },
    {
      store: ctx.store,
      logDir: ctx.state.paths.logs(target.name),
      index: ctx.index,
      toolVersion: ctx.toolVersion,
      resolveHeader: (stage, dir) => res.header(stage, dir),
      onEvent: ctx.emit,
      remoteCache,
      probe: true,
      signal: ctx.signal,
    },
  );
  return probed.ok ? ok(undefined) : probed;
}

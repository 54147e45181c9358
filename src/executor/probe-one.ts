import type { Diagnostic } from '../core/diagnostic.js';
import { ok, type Result } from '../core/result.js';
import type { Target } from '../manifest/project.js';
import type { Recipe } from '../recipe/model.js';
import type { RemoteStepCache } from '../builder/remote-cache.js';
import { buildInputs, type BuildContext } from './build-inputs.js';

/**
 * `plan --remote` for one stale target: its sources prepared and its steps planned as `up` would
 * (a registry base not in the cache yet is pulled into it, as `up` would first), then each step
 * said to come from the store, from a cache-from repository (asked, not pulled), or to run
 * (`step-planned` events). Nothing runs, no output or state is written.
 */
export async function probeOne(ctx: BuildContext, target: Target, recipe: Recipe | undefined, remoteCache: RemoteStepCache): Promise<Result<void, Diagnostic>> {
  const inputs = await buildInputs(ctx, target, recipe);
  if (!inputs.ok) return inputs;
  const { buildTarget } = await import('../builder/build-target.js');
  // A probe stops before the test and the export: what of the request is about them is not used.
  const probed = await buildTarget(inputs.value.request, { ...inputs.value.context, remoteCache, probe: true });
  return probed.ok ? ok(undefined) : probed;
}

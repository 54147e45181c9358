import type { Diagnostic } from '../core/diagnostic.js';
import { fail, ok, type Result } from '../core/result.js';

/**
 * The steps being made now by the builds of one run, by key (`BuildTargetContext.inflight`, one map
 * a run): a build that needs a step another build is making waits for it instead of running it a
 * second time (targets that share a recipe). A step that failed in this run stays failed for the
 * rest of it: its other claimants fail at once with the same diagnostic, instead of running it
 * again one after the other. The failures are kept beside the run's map (so they live as long as
 * the run does), not in it.
 */
const failures = new WeakMap<Map<string, Promise<void>>, Map<string, Diagnostic>>();

export interface StepClaim {
  /** Lets the waiting builds go on; with a failure, they fail with it. Only the first call counts. */
  release(failure?: Diagnostic): void;
}

/**
 * Waits until no other build of the run is making step `key`, then claims it (no await between
 * the check and the claim). Fails with the step's diagnostic when it failed earlier in the run.
 */
export async function claimStep(inflight: Map<string, Promise<void>>, key: string): Promise<Result<StepClaim, Diagnostic>> {
  for (let pending = inflight.get(key); pending; pending = inflight.get(key)) await pending;
  const failed = failures.get(inflight)?.get(key);
  if (failed) return fail(failed);
  let wake!: () => void;
  inflight.set(key, new Promise<void>((resolve) => (wake = resolve)));
  let released = false;
  return ok({
    release(failure?: Diagnostic) {
      if (released) return;
      released = true;
      if (failure) {
        let known = failures.get(inflight);
        if (!known) failures.set(inflight, (known = new Map()));
        known.set(key, failure);
      }
      inflight.delete(key);
      wake();
    },
  });
}

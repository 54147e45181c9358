import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import type { BuildTargetResult } from '../builder/build-target.js';
import { error, type Diagnostic } from '../core/diagnostic.js';
import { withFileSystemCause } from '../core/errno-failure.js';
import { fail, ok, type Result } from '../core/result.js';
import { changedWhileBuilding, targetFingerprint } from '../freshness/fingerprint.js';
import { ownValue } from '../core/name-table.js';
import { buildNeedsRoot } from '../builder/needs-root.js';
import { outputInUse, writableSessionHolder } from '../runtime/writable-lock.js';
import type { Target } from '../manifest/project.js';
import type { Recipe } from '../recipe/model.js';
import { buildInputs, type BuildContext } from './build-inputs.js';
import { outputIdentity, type TargetStatus } from './target-status.js';

export interface BuiltOne {
  readonly stepsRun: number;
  readonly stepsCached: number;
  readonly key: string;
}

/**
 * Builds one stale target and records it: the pending mark first (so that an output a killed run
 * wrote is still known as ours), then the build, then the record, then the mark is removed.
 */
export async function buildOne(ctx: BuildContext, target: Target, recipe: Recipe | undefined, status: TargetStatus): Promise<Result<BuiltOne, Diagnostic>> {
  const { project, state } = ctx;
  if (process.getuid?.() !== 0) return fail(buildNeedsRoot());
  // Never replace an image open in a writable shell (src/runtime/writable-lock.ts); --force neither.
  const holder = writableSessionHolder(target.output);
  if (holder) return fail(outputInUse(target.format === 'sandbox' ? 'sandbox' : 'image', `${relative(project.dir, target.output) || target.output}${target.format === 'sandbox' ? '/' : ''}`, holder, target.locations.output ?? target.locations.name));
  const inputs = await buildInputs(ctx, target, recipe);
  if (!inputs.ok) return inputs;
  const { request, context, outputs } = inputs.value;
  await mkdir(dirname(target.output), { recursive: true });
  await mkdir(dirname(state.paths.pending(target.name)), { recursive: true });
  await writeFile(state.paths.pending(target.name), JSON.stringify({ output: target.output, pid: process.pid, started: new Date().toISOString() }) + '\n');
  const { buildTarget } = await import('../builder/build-target.js');
  const built = await buildTarget(
    {
      ...request,
      // A clean sandbox from the last build is updated in place; a forced, hand-modified or
      // interrupted one is written again in full.
      ...(target.format === 'sandbox' && status.record?.lowers && !status.dirty && !status.interrupted && status.record.output === target.output
        ? { incremental: { previousLowers: status.record.lowers, journal: state.paths.journal(target.name) } }
        : {}),
    },
    { ...context, inflight: ctx.inflight, ...(ctx.remoteCache ? { remoteCache: ctx.remoteCache } : {}) },
  );
  // Its output is new: what was remembered of it is not true any more.
  ctx.memo.delete(target.output);
  if (!built.ok) {
    // The export publishes by rename: a failed build left the output as it was. The mark stays
    // only when it was there before (that output was written and never recorded).
    if (!status.unrecorded) await rm(state.paths.pending(target.name), { force: true });
    return fail(withFileSystemCause(built.error, target.output));
  }
  return recordBuild(ctx, target, recipe, status, built.value, outputs);
}

/**
 * Records a build after its output: the fingerprint as it is now, with the pins this build made.
 * If a file it reads changed during the build, the output may match neither version: record the
 * one from before, so that the next run rebuilds instead of calling it fresh.
 */
async function recordBuild(
  ctx: BuildContext,
  target: Target,
  recipe: Recipe | undefined,
  status: TargetStatus,
  built: BuildTargetResult,
  outputs: Record<string, string>,
): Promise<Result<BuiltOne, Diagnostic>> {
  const { state } = ctx;
  const after = await targetFingerprint(target, recipe, {
    projectDir: ctx.project.dir,
    lock: ctx.pins.lock,
    platform: ctx.platform,
    index: ctx.index,
    outputOf: (n) => ownValue(outputs, n),
    toolVersion: ctx.toolVersion,
    filter: ctx.filter,
  });
  const fp = changedWhileBuilding(status.fingerprint.components, after.components) ? status.fingerprint : after;
  const out = await outputIdentity(target, ctx.index, { clockDir: state.paths.root });
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
    steps: built.steps.map((s) => s.key),
    references: built.references,
    lowers: built.lowers,
    // What was pushed, and of which key: a push is due where that key is not this one (push-outputs.ts).
    ...(status.record?.pushed ? { pushed: status.record.pushed } : {}),
  });
  // Recorded: from here on the record, not the mark, says the output is ours.
  await rm(state.paths.pending(target.name), { force: true });
  const counted = built.steps.filter((s) => s.label.kind !== 'source');
  return ok({ stepsRun: counted.filter((s) => !s.cached).length, stepsCached: counted.filter((s) => s.cached).length, key: fp.key });
}

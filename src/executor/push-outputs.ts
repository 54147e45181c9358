import { error, type Diagnostic } from '../core/diagnostic.js';
import { ownValue } from '../core/name-table.js';
import { fail, ok, type Result } from '../core/result.js';
import type { PushDestination, Target } from '../manifest/project.js';
import { parseReference } from '../registry/reference.js';
import type { RegistryClient } from '../registry/registry-client.js';
import type { ProjectState, TargetRecord } from '../state/project-state.js';
import type { Store } from '../store/store.js';
import type { UpEventListener } from './up-events.js';

/** A `push:` entry of a target that `up` pushes now, and why. */
export interface DuePush {
  readonly destination: PushDestination;
  /** Its index in the target's `push:` list (for its location). */
  readonly index: number;
  readonly why: string;
}

/**
 * The `push:` entries of a target that are due for an output of `key` (README, "Publishing
 * images"): every one with `up --push`; else those never pushed by `up`, or last pushed with
 * another key. The key says what the output was built from (its sources, recipe, inputs, args):
 * the same key is the same image, already there; any change to what it is made of is a new key,
 * so an image is pushed exactly when what it is made of changed, however many times it was built.
 */
export function duePushes(target: Target, record: TargetRecord | undefined, key: string | undefined, force: boolean): DuePush[] {
  return (target.push ?? []).flatMap((destination, index): DuePush[] => {
    const last = record?.pushed ? ownValue(record.pushed, destination.ref) : undefined;
    if (force) return [{ destination, index, why: 'push forced (--push)' }];
    // A dry run's target whose key is known only after what it is built from is (re)built.
    if (key === undefined) return [{ destination, index, why: 'if the rebuild changes the output (its key is known only then)' }];
    if (last === undefined) return [{ destination, index, why: 'not pushed there yet' }];
    if (last.key !== key) return [{ destination, index, why: 'output changed since the last push there' }];
    return [];
  });
}

export interface PushContext {
  readonly state: ProjectState;
  readonly store: Store;
  readonly client: () => Promise<RegistryClient>;
  readonly emit: UpEventListener;
  readonly signal: AbortSignal;
}

/**
 * Pushes a recorded target to its due destinations, in order, each recorded in the state once the
 * registry has it. The first failure ends it: that push's error, at its `push:` entry; the output
 * and its record stay as they are (the next `up` finds the push still due and tries again).
 */
export async function pushTarget(ctx: PushContext, target: Target, due: readonly DuePush[]): Promise<Result<{ pushed: number; bytesSent: number }, Diagnostic>> {
  const record = ctx.state.get(target.name);
  if (!record) return fail(error('unexpected', `target ${target.name} has no record to push`));
  const { pushOutput } = await import('../builder/push-output.js');
  const client = await ctx.client();
  let pushed = 0;
  let bytesSent = 0;
  for (const d of due) {
    const destination = d.destination.ref;
    const location = target.locations.push?.[d.index] ?? target.locations.name;
    const ref = parseReference(d.destination.ref);
    if (!ref.ok) return fail({ ...ref.error, location });
    const started = Date.now();
    ctx.emit({ type: 'push-started', target: target.name, destination, why: d.why });
    const r = await pushOutput(ref.value, {
      client,
      store: ctx.store,
      output: record.output,
      lowers: record.lowers,
      onBlob: (b) => ctx.emit({ type: 'push-blob', target: target.name, destination, digest: b.digest, size: b.size, how: b.how }),
      signal: ctx.signal,
    });
    if (!r.ok) {
      return fail(
        error(r.error.reason, `pushing ${target.name} to ${d.destination.text} failed: ${r.error.message}`, {
          location,
          hint: `${r.error.hint !== undefined ? `${r.error.hint}; ` : ''}the output and its record are kept: the next 'orchestrator up' pushes it again`,
        }),
      );
    }
    await ctx.state.setPushed(target.name, destination, { key: record.key, digest: r.value.digest, at: new Date().toISOString() });
    const blobs = r.value.blobs;
    pushed++;
    bytesSent += r.value.bytesSent;
    ctx.emit({
      type: 'push-done',
      target: target.name,
      destination,
      digest: r.value.digest,
      layers: r.value.layers,
      blobsUploaded: blobs.filter((b) => b.how === 'uploaded').length,
      blobsPresent: blobs.filter((b) => b.how !== 'uploaded').length,
      bytesSent: r.value.bytesSent,
      ms: Date.now() - started,
    });
  }
  return ok({ pushed, bytesSent });
}

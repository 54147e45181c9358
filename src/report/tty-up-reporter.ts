import { Listr, type ListrTaskWrapper } from 'listr2';
import { stepName } from '../builder/build-events.js';
import type { UpEvent, UpEventListener } from '../executor/up-events.js';
import { formatReason } from '../freshness/explain.js';
import { formatDiagnostic } from './diagnostics.js';
import { exportProgressText } from './export-progress.js';
import { formatBytes } from './format-bytes.js';
import { pushDoneText, summaryLine } from './up-reporter.js';

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(e: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

type Task = ListrTaskWrapper<unknown, never, never>;

/**
 * listr2 on a terminal: one line per target with what it is doing now (its step, the last line of
 * its script's output), ticked off as it finishes; failures in full after the list; one summary line.
 */
// Long on purpose: listr2's tasks and the events that drive them share the state of one closure.
export function ttyUpReporter(
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
  order: readonly string[],
  options: { color: boolean },
): { listener: UpEventListener; done: () => Promise<void> } {
  const waits = new Map(order.map((n) => [n, deferred()]));
  const tasks = new Map<string, Task>();
  const early = new Map<string, UpEvent[]>();
  const failures: string[] = [];
  /** What each target pushed (or would push), said after its status. */
  const pushes = new Map<string, string[]>();
  const pushText = (name: string): string => {
    const p = pushes.get(name);
    return p && p.length > 0 ? `; ${p.join('; ')}` : '';
  };
  const warnings: string[] = [];
  let summary = '';
  const list = new Listr(
    order.map((name) => ({
      title: name,
      task: async (_ctx: unknown, task: Task) => {
        tasks.set(name, task);
        for (const e of early.get(name) ?? []) apply(e);
        await waits.get(name)!.promise;
      },
    })),
    {
      concurrent: true,
      exitOnError: false,
      registerSignalListeners: false,
      rendererOptions: { outputBar: 1, showErrorMessage: false, collapseErrors: true },
    } as never,
  );
  const running = list.run().catch(() => undefined);

  const apply = (e: UpEvent): void => {
    if (e.type === 'run-done') {
      summary = summaryLine(e.summary);
      for (const w of waits.values()) w.resolve();
      return;
    }
    const task = tasks.get(e.target);
    if (!task) {
      early.set(e.target, [...(early.get(e.target) ?? []), e]);
      return;
    }
    const w = waits.get(e.target);
    switch (e.type) {
      case 'target-fresh':
        task.skip(`${e.target}: fresh${pushText(e.target)}`);
        w?.resolve();
        break;
      case 'target-kept':
        task.skip(`${e.target}: modified by hand, used as it is`);
        w?.resolve();
        break;
      case 'target-stale':
        task.title = `${e.target}: ${e.dryRun ? 'would build' : 'building'} (${e.reasons.map(formatReason).join('; ')})`;
        break;
      case 'target-done':
        task.title = `${e.target}: built in ${(e.ms / 1000).toFixed(1)} s (${e.stepsRun} step${e.stepsRun === 1 ? "" : "s"} run, ${e.stepsCached} from cache)${pushText(e.target)}`;
        w?.resolve();
        break;
      case 'target-failed':
        failures.push(formatDiagnostic(e.error, { color: options.color }));
        w?.reject(new Error(`${e.target}: failed`));
        break;
      case 'target-skipped':
        task.skip(`${e.target}: skipped (${e.because})`);
        w?.resolve();
        break;
      case 'step-started':
        task.output = `${stepName(e.step)} running`;
        break;
      case 'step-cached':
        if (e.remote) task.output = `${stepName(e.step)} from remote cache ${e.remote.where} (${formatBytes(e.remote.bytes)})`;
        break;
      case 'push-planned':
        // A stale target's come after its title was set; a fresh one's before it is.
        if (task.title.startsWith(`${e.target}: would build`)) task.title = `${task.title}; would push to ${e.destination} (${e.why})`;
        else pushes.set(e.target, [...(pushes.get(e.target) ?? []), `would push to ${e.destination} (${e.why})`]);
        break;
      case 'push-started':
        task.output = `pushing to ${e.destination}`;
        break;
      case 'push-blob':
        if (e.how === 'uploaded') task.output = `pushing to ${e.destination}: uploaded ${formatBytes(e.size)}`;
        break;
      case 'push-done':
        pushes.set(e.target, [...(pushes.get(e.target) ?? []), pushDoneText(e)]);
        break;
      case 'step-output': {
        const last = e.chunk.trimEnd().split('\n').pop();
        if (last) task.output = `${stepName(e.step)}: ${last}`;
        break;
      }
      case 'test-started':
        task.output = '%test running';
        break;
      case 'export-started':
        task.output = 'exporting';
        break;
      case 'export-progress':
        task.output = exportProgressText(e);
        break;
      case 'warning':
        // Said after the task list, as failures are: listr2 owns the screen while it runs.
        warnings.push(`${e.target}: ${formatDiagnostic(e.diagnostic, { color: options.color })}`);
        break;
      default:
        break;
    }
  };
  return {
    listener: apply,
    done: async () => {
      for (const w of waits.values()) w.resolve();
      await running;
      if (warnings.length > 0) err.write(warnings.join('\n') + '\n');
      if (failures.length > 0) err.write(failures.join('\n') + '\n');
      if (summary) out.write(summary + '\n');
    },
  };
}

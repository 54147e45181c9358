import type { BuildEvent, BuildEventListener } from '../builder/build-events.js';
import { stepName } from '../builder/build-events.js';
import { unreachable } from '../core/unreachable.js';
import { exportReuseText } from './export-progress.js';
import { formatBytes } from './format-bytes.js';

export interface PlainBuildReporterOptions {
  /** Pass the output of %setup/%post/%test through (one-shot builds do, as Singularity does). */
  readonly showOutput: boolean;
  /** Prefix every line with the target name (several targets at once). */
  readonly prefix: boolean;
  /** Prefix lines with the time of day (CI logs). */
  readonly timestamps?: boolean;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Renders build events as plain lines: for pipes, CI logs and `orchestrator build`. */
export function plainBuildReporter(out: NodeJS.WritableStream, options: PlainBuildReporterOptions): BuildEventListener {
  const line = (target: string, text: string): void => {
    const time = options.timestamps ? `${new Date().toISOString().slice(11, 19)} ` : '';
    out.write(`${time}${options.prefix ? `[${target}] ` : ''}${text}\n`);
  };
  return (e: BuildEvent) => {
    switch (e.type) {
      case 'source-ready':
        line(e.target, `source ${e.description} ready${e.ms > 50 ? ` in ${seconds(e.ms)}` : ''}`);
        break;
      case 'warning':
        line(e.target, `warning: ${e.diagnostic.message}${e.diagnostic.hint ? `\n  hint: ${e.diagnostic.hint}` : ''}`);
        break;
      case 'step-cached':
        line(e.target, e.remote ? `${stepName(e.step)}: from remote cache ${e.remote.where} (${formatBytes(e.remote.bytes)})` : `${stepName(e.step)}: cached`);
        break;
      case 'step-started':
        line(e.target, `${stepName(e.step)}: running`);
        break;
      case 'step-output':
        if (options.showOutput) out.write(e.chunk);
        break;
      case 'step-done':
        line(e.target, `${stepName(e.step)}: done in ${seconds(e.ms)}`);
        break;
      case 'step-failed':
        line(e.target, `${stepName(e.step)}: failed after ${seconds(e.ms)}`);
        break;
      case 'test-started':
        line(e.target, '%test: running');
        break;
      case 'test-done':
        line(e.target, `%test: passed in ${seconds(e.ms)}`);
        break;
      case 'export-started':
        line(e.target, 'export: writing the image');
        break;
      case 'export-progress':
        // One line per export, at its end: a pipe or a log gets no progress stream.
        break;
      case 'step-planned':
        // Only probes (plan --remote) say this; a build does not probe.
        break;
      case 'export-done':
        line(e.target, `export: done in ${seconds(e.ms)}${exportReuseText(e)}`);
        break;
      default:
        unreachable(e);
    }
  };
}

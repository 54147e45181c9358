import { stepName } from '../builder/build-events.js';
import { unreachable } from '../core/unreachable.js';
import type { WatchEvent, WatchEventListener } from '../watch/watch-events.js';
import { countSummary, formatDiagnostics } from './diagnostics.js';
import { plainUpReporter, type PlainUpReporterOptions } from './up-reporter.js';

function list(items: readonly string[], max = 5): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')}, ... (${items.length - max} more)`;
}

/**
 * Plain lines for `up --watch`: each run as `up` prints it (one summary line per run), plus the
 * watcher's own lines:
 *
 *     watch: 2 files changed (recipes/app.def, data/x.txt); rebuilding app, bundle
 *     watch: data/x.txt changed while building app; stopping that build to start again
 *     watch: waiting for changes (7 paths; Ctrl-C to stop)
 *
 * A build the watcher stopped shows as "interrupted", not as a failure with an error.
 */
export function plainWatchReporter(out: NodeJS.WritableStream, err: NodeJS.WritableStream, options: PlainUpReporterOptions): WatchEventListener {
  const up = plainUpReporter(out, err, options);
  let interrupted = 0;
  const line = (text: string): void => {
    const time = options.timestamps ? `${new Date().toISOString().slice(11, 23)} ` : '';
    out.write(`${time}watch: ${text}\n`);
  };
  const targetLine = (target: string, text: string): void => {
    const time = options.timestamps ? `${new Date().toISOString().slice(11, 23)} ` : '';
    out.write(`${time}${target}: ${text}\n`);
  };
  return (e: WatchEvent) => {
    switch (e.type) {
      case 'watch-changes': {
        const n = e.paths.length;
        line(`${n} file${n === 1 ? '' : 's'} changed (${list(e.paths)}); rebuilding ${list(e.targets, 8)}`);
        break;
      }
      case 'watch-restart':
        line(`${list(e.paths)} changed while building ${list(e.targets, 8)}; stopping that build to start again`);
        break;
      case 'watch-nothing':
        line(`${list(e.paths)} changed; nothing to rebuild`);
        break;
      case 'watch-waiting':
        line(`waiting for changes (${e.watched} path${e.watched === 1 ? '' : 's'} watched; Ctrl-C to stop)`);
        break;
      case 'watch-diagnostics':
        err.write(formatDiagnostics(e.diagnostics, { color: options.color }) + '\n');
        if (!e.valid) line(`${countSummary(e.diagnostics)}; nothing is built until the manifest and recipes are fixed`);
        break;
      case 'watch-stopped':
        line('stopped');
        break;
      case 'step-failed':
        if (e.error.reason === 'interrupted') targetLine(e.target, `${stepName(e.step)} interrupted`);
        else up(e);
        break;
      case 'target-failed':
        if (e.error.reason === 'interrupted') {
          interrupted++;
          targetLine(e.target, 'interrupted');
        } else up(e);
        break;
      case 'run-done': {
        const s = e.summary;
        up({ ...e, summary: { ...s, failed: s.failed - interrupted, skipped: s.skipped + interrupted } });
        interrupted = 0;
        break;
      }
      case 'target-fresh':
      case 'target-kept':
      case 'target-stale':
      case 'target-started':
      case 'target-done':
      case 'target-skipped':
      case 'source-ready':
      case 'warning':
      case 'step-cached':
      case 'step-started':
      case 'step-done':
      case 'step-output':
      case 'test-started':
      case 'test-done':
      case 'export-started':
      case 'export-progress':
      case 'export-done':
      case 'probe-skipped':
      case 'step-planned':
      case 'push-planned':
      case 'push-started':
      case 'push-blob':
      case 'push-done':
        up(e);
        break;
      default:
        unreachable(e);
    }
  };
}

/** NDJSON for `up --watch --progress json`: the events of `up` and the watcher's, one per line. */
export function jsonWatchReporter(out: NodeJS.WritableStream): WatchEventListener {
  return (e: WatchEvent) => {
    out.write(JSON.stringify({ time: new Date().toISOString(), ...e }) + '\n');
  };
}

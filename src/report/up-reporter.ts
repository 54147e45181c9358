import { stepName } from '../builder/build-events.js';
import { shortDigest } from '../core/digest.js';
import { unreachable } from '../core/unreachable.js';
import type { UpEvent, UpEventListener, UpSummary } from '../executor/up-events.js';
import { formatReason } from '../freshness/explain.js';
import { formatDiagnostic } from './diagnostics.js';
import { exportReuseText } from './export-progress.js';
import { formatBytes } from './format-bytes.js';

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** `built 2, from cache 5 steps, fresh 3, failed 0, skipped 0 in 4.2 s` */
export function summaryLine(s: UpSummary): string {
  const parts = [`built ${s.built}`, `fresh ${s.fresh}`, `failed ${s.failed}`, `skipped ${s.skipped}`, `steps from cache ${s.stepsCached}`];
  const r = s.remoteCache;
  if (r && r.pulled > 0) parts.push(`${r.pulled} from remote cache (${formatBytes(r.pulledBytes)})`);
  if (r && (r.pushed > 0 || r.pushFailed > 0)) parts.push(`pushed ${r.pushed} to remote cache (${formatBytes(r.pushedBytes)} uploaded)${r.pushFailed > 0 ? `, ${r.pushFailed} not pushed` : ''}`);
  if (s.pushed > 0) parts.push(`pushed ${s.pushed} image${s.pushed === 1 ? '' : 's'} (${formatBytes(s.pushedBytes)} sent)`);
  return `${s.interrupted ? 'interrupted: ' : ''}${parts.join(', ')} in ${seconds(s.ms)}`;
}

/** `pushed to REG/REPO:TAG (sha256:0123456789ab) in 1.2 s: 3 layers, 2 blobs uploaded (4.5 MiB), 2 already there` */
export function pushDoneText(e: Extract<UpEvent, { type: 'push-done' }>): string {
  return `pushed to ${e.destination} (${shortDigest(e.digest)}) in ${seconds(e.ms)}: ${e.layers} layer${e.layers === 1 ? '' : 's'}, ${e.blobsUploaded} blob${e.blobsUploaded === 1 ? '' : 's'} uploaded (${formatBytes(e.bytesSent)}), ${e.blobsPresent} already there`;
}

/** `from remote cache REG/REPO`, `from cache`, `would run`: where a probed step would come from. */
export function stepPlannedText(e: Extract<UpEvent, { type: 'step-planned' }>): string {
  return e.from === 'remote' ? `from remote cache ${e.where ?? ''}`.trimEnd() : e.from === 'cache' ? 'from cache' : 'would run';
}

export interface PlainUpReporterOptions {
  readonly timestamps: boolean;
  readonly color: boolean;
  /** Show the output of the recipe's scripts as it comes (prefixed with the target). */
  readonly showOutput: boolean;
}

/**
 * Plain lines for `up` (pipes, CI logs): one line per thing that happens, prefixed with the
 * target, and one summary line at the end. Script output is shown prefixed, line by line.
 */
export function plainUpReporter(out: NodeJS.WritableStream, err: NodeJS.WritableStream, options: PlainUpReporterOptions): UpEventListener {
  const partial = new Map<string, string>();
  const line = (target: string, text: string): void => {
    const time = options.timestamps ? `${new Date().toISOString().slice(11, 23)} ` : '';
    out.write(`${time}${target}: ${text}\n`);
  };
  return (e: UpEvent) => {
    switch (e.type) {
      case 'target-fresh':
        line(e.target, 'fresh');
        break;
      case 'target-kept':
        line(e.target, `modified by hand (${e.changes} change${e.changes === 1 ? '' : 's'}); used as it is`);
        break;
      case 'target-stale':
        line(e.target, `${e.dryRun ? 'would build' : 'stale'}: ${e.reasons.map(formatReason).join('; ')}`);
        break;
      case 'target-started':
        line(e.target, 'building');
        break;
      case 'target-done':
        line(e.target, `built in ${seconds(e.ms)} (${e.stepsRun} step${e.stepsRun === 1 ? '' : 's'} run, ${e.stepsCached} from cache)`);
        break;
      case 'target-failed':
        line(e.target, 'FAILED');
        err.write(formatDiagnostic(e.error, { color: options.color }) + '\n');
        break;
      case 'target-skipped':
        line(e.target, `skipped: ${e.because}`);
        break;
      case 'run-done':
        out.write(`${summaryLine(e.summary)}\n`);
        break;
      case 'source-ready':
        if (e.ms > 200) line(e.target, `source ${e.description} ready in ${seconds(e.ms)}`);
        break;
      case 'warning':
        err.write(`${e.target}: ${formatDiagnostic(e.diagnostic, { color: options.color })}\n`);
        break;
      case 'step-cached':
        if (e.remote) line(e.target, `${stepName(e.step)} from remote cache ${e.remote.where} (${formatBytes(e.remote.bytes)})`);
        break;
      case 'step-started':
        line(e.target, `${stepName(e.step)} running`);
        break;
      case 'step-done':
        line(e.target, `${stepName(e.step)} done in ${seconds(e.ms)}`);
        break;
      case 'step-failed':
        line(e.target, `${stepName(e.step)} failed after ${seconds(e.ms)}`);
        break;
      case 'step-output': {
        if (!options.showOutput) break;
        const text = (partial.get(e.target) ?? '') + e.chunk;
        const lines = text.split('\n');
        partial.set(e.target, lines.pop() ?? '');
        for (const l of lines) line(e.target, `| ${l}`);
        break;
      }
      case 'test-started':
        line(e.target, '%test running');
        break;
      case 'test-done':
        line(e.target, `%test passed in ${seconds(e.ms)}`);
        break;
      case 'export-started':
      case 'export-progress':
        break;
      case 'export-done':
        line(e.target, e.updatedInPlace ? `sandbox updated in place in ${seconds(e.ms)}` : `exported in ${seconds(e.ms)}${exportReuseText(e)}`);
        break;
      case 'probe-skipped':
        line(e.target, `steps not probed: ${e.because}`);
        break;
      case 'step-planned':
        line(e.target, `${stepName(e.step)} ${stepPlannedText(e)}`);
        break;
      case 'push-planned':
        line(e.target, `would push to ${e.destination} (${e.why})`);
        break;
      case 'push-started':
        line(e.target, `pushing to ${e.destination} (${e.why})`);
        break;
      case 'push-blob':
        break;
      case 'push-done':
        line(e.target, pushDoneText(e));
        break;
      default:
        unreachable(e);
    }
  };
}

/** NDJSON events for `--progress json`: one object per line, with the time. */
export function jsonUpReporter(out: NodeJS.WritableStream): UpEventListener {
  return (e: UpEvent) => {
    const record: Record<string, unknown> = { time: new Date().toISOString(), ...e };
    out.write(JSON.stringify(record) + '\n');
  };
}

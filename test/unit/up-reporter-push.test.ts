import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseDigest } from '../../src/core/digest.js';
import type { UpEvent } from '../../src/executor/up-events.js';
import { jsonUpReporter, plainUpReporter, summaryLine } from '../../src/report/up-reporter.js';

const digest = parseDigest(`sha256:${'ab'.repeat(32)}`)!;

function plainLines(events: UpEvent[]): string {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks: string[] = [];
  out.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
  const listener = plainUpReporter(out, err, { timestamps: false, color: false, showOutput: true });
  for (const e of events) listener(e);
  return chunks.join('');
}

const summary = { built: 1, fresh: 0, failed: 0, skipped: 0, stepsCached: 1, pushed: 2, pushedBytes: 3 * 1024 * 1024, ms: 1500, interrupted: false };

describe('the up reporters on pushes and remote steps', () => {
  it('says what would be pushed, what is pushed, blob by blob in json, and counts pushes in the summary', () => {
    const text = plainLines([
      { type: 'push-planned', target: 'app', destination: 'reg.example/team/app:1', why: 'not pushed there yet' },
      { type: 'push-started', target: 'app', destination: 'reg.example/team/app:1', why: 'push forced (--push)' },
      { type: 'push-blob', target: 'app', destination: 'reg.example/team/app:1', digest, size: 10, how: 'uploaded' },
      { type: 'push-done', target: 'app', destination: 'reg.example/team/app:1', digest, layers: 3, blobsUploaded: 2, blobsPresent: 2, bytesSent: 2048, ms: 1200 },
      { type: 'run-done', summary },
    ]);
    expect(text).toBe(
      [
        'app: would push to reg.example/team/app:1 (not pushed there yet)',
        'app: pushing to reg.example/team/app:1 (push forced (--push))',
        'app: pushed to reg.example/team/app:1 (sha256:abababababab) in 1.2 s: 3 layers, 2 blobs uploaded (2.00 KiB), 2 already there',
        'built 1, fresh 0, failed 0, skipped 0, steps from cache 1, pushed 2 images (3.00 MiB sent) in 1.5 s',
        '',
      ].join('\n'),
    );
    expect(summaryLine({ ...summary, pushed: 0, pushedBytes: 0 })).not.toContain('pushed');
  });

  it('says where a probed step would come from, and why a target was not probed', () => {
    const text = plainLines([
      { type: 'step-planned', target: 'app', step: { kind: 'post' }, key: 'sha256:1', from: 'remote', where: 'reg.example/team/steps' },
      { type: 'step-planned', target: 'app', step: { kind: 'metadata' }, key: 'sha256:2', from: 'build' },
      { type: 'step-planned', target: 'app', step: { kind: 'files' }, key: 'sha256:3', from: 'cache' },
      { type: 'probe-skipped', target: 'lib', because: 'its steps\' keys depend on base, which would be rebuilt first' },
    ]);
    expect(text).toBe(
      [
        'app: %post from remote cache reg.example/team/steps',
        'app: metadata would run',
        'app: %files from cache',
        "lib: steps not probed: its steps' keys depend on base, which would be rebuilt first",
        '',
      ].join('\n'),
    );
  });

  it('writes push events as NDJSON with their sizes and digests', () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
    jsonUpReporter(out)({ type: 'push-blob', target: 'app', destination: 'reg.example/team/app:1', digest, size: 10, how: 'exists' });
    expect(JSON.parse(chunks.join(''))).toMatchObject({ type: 'push-blob', target: 'app', digest, size: 10, how: 'exists' });
  });
});

#!/usr/bin/env node
// Generates manifests of many targets and reports how long `orchestrator validate` takes and its
// peak RSS (GNU time -v). Issue 20 item 12: a 10 MB manifest (127k targets) took ~617 s.
//
//   node bench/big-manifest.mjs [N ...]        (default: 10000 100000)
//
// Each target is written in block style with a recipe, a format, an output, args and inputs:
// about 80 bytes a target, like the manifest of the report.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'orchestrator.js');

/** The manifest text of `n` targets (also used by test/integration/big-manifest.test.ts). */
export function bigManifest(n) {
  const lines = ['version: 1', 'args:', '  GREETING: hello', 'targets:'];
  for (let i = 0; i < n; i++) {
    lines.push(`  t${i}:`, '    recipe: app.def', '    format: squashfs', `    output: out/t${i}.simg`, `    args: {N: "${i}"}`);
    if (i > 0 && i % 10 === 0) lines.push(`    inputs: [target:t${i - 1}]`);
  }
  lines.push('groups:', `  default: [t0, t${n - 1}]`, '');
  return lines.join('\n');
}

export const APP_DEF = 'Bootstrap: scratch\n\n%post\n  echo {{ GREETING }} {{ N }}\n';

export function writeProject(dir, n) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'orchestrator.yaml'), bigManifest(n));
  writeFileSync(join(dir, 'app.def'), APP_DEF);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sizes = process.argv.slice(2).map(Number);
  for (const n of sizes.length > 0 ? sizes : [10000, 100000]) {
    const dir = mkdtempSync(join(tmpdir(), 'orchestrator-big-'));
    try {
      writeProject(dir, n);
      const t0 = process.hrtime.bigint();
      const r = spawnSync('/usr/bin/time', ['-v', process.execPath, BIN, 'validate'], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 30 });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1];
      const bytes = bigManifest(n).length;
      console.log(`${n} targets (${(bytes / 1e6).toFixed(1)} MB): validate exit ${r.status}, ${(ms / 1000).toFixed(2)} s, peak RSS ${rss ? (Number(rss) / 1024).toFixed(0) : '?'} MiB; ${r.stdout.trim()}`);
      if (r.status !== 0) console.log(r.stderr.split('\n').slice(0, 10).join('\n'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

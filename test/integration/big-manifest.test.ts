import { spawn } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';
import { Rig } from '../helpers/rig.js';

// Issue 20 item 12: a manifest of many thousand targets validates (in linear time: see
// bench/big-manifest.mjs for the figures), and Ctrl-C while it loads ends the run at once with 130.
// No timed assertion here.

/** The manifest of bench/big-manifest.mjs: `n` targets of one recipe, with args and inputs. */
function bigManifest(n: number): string {
  const lines = ['version: 1', 'args:', '  GREETING: hello', 'targets:'];
  for (let i = 0; i < n; i++) {
    lines.push(`  t${i}:`, '    recipe: app.def', '    format: squashfs', `    output: out/t${i}.simg`, `    args: {N: "${i}"}`);
    if (i > 0 && i % 10 === 0) lines.push(`    inputs: [target:t${i - 1}]`);
  }
  lines.push('groups:', `  default: [t0, t${n - 1}]`, '');
  return lines.join('\n');
}
const APP_DEF = 'Bootstrap: scratch\n\n%post\n  echo {{ GREETING }} {{ N }}\n';

let rig: Rig;
beforeEach(async () => {
  rig = await Rig.create();
});
afterEach(() => rig.cleanup());

describe('big manifests (built CLI)', () => {
  it('10k targets validate', async () => {
    rig.write({ 'orchestrator.yaml': bigManifest(10_000), 'app.def': APP_DEF });
    const r = await runCli(['validate'], { cwd: rig.dir });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok: 10000 targets\n');
    expect(r.code).toBe(0);
  });

  it('10k targets with one duplicate key and one duplicate output: both found, at their places', async () => {
    const text = bigManifest(10_000)
      .replace('  t5000:\n    recipe: app.def\n', '  t5000:\n    recipe: app.def\n    recipe: app.def\n')
      .replace('output: out/t9999.simg', 'output: out/t0.simg');
    rig.write({ 'orchestrator.yaml': text, 'app.def': APP_DEF });
    const r = await runCli(['validate'], { cwd: rig.dir });
    expect(r.stderr).toContain("error: duplicate key 'recipe'\n");
    expect(r.code).toBe(2);
    rig.write({ 'orchestrator.yaml': bigManifest(10_000).replace('output: out/t9999.simg', 'output: out/t0.simg'), 'app.def': APP_DEF });
    const d = await runCli(['validate'], { cwd: rig.dir });
    expect(d.stderr).toContain("error: targets 't0' and 't9999' both write 'out/t0.simg'\n");
    expect(d.code).toBe(2);
  });

  it('Ctrl-C while a 100k-target manifest loads exits 130 and writes nothing', async () => {
    rig.write({ 'orchestrator.yaml': bigManifest(100_000), 'app.def': APP_DEF });
    const child = spawn(process.execPath, [BIN, 'validate'], { cwd: rig.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    // Time for node to start and install its signal handlers; the load itself takes far longer.
    await new Promise((r) => setTimeout(r, 3000));
    child.kill('SIGINT');
    const { code, signal } = await exited;
    expect({ code, signal }).toEqual({ code: 130, signal: null });
    expect(stdout).toBe('');
    expect(stderr).toBe('error: interrupted while reading orchestrator.yaml\n1 error\n');
    expect(rig.files()).toEqual(['app.def', 'orchestrator.yaml']);
  });
});

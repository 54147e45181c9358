import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { Rig } from '../helpers/rig.js';

/**
 * `orchestrator up` end to end through the built CLI, on a busybox root folder as the base (no
 * registry needed), with real overlay mounts and real mksquashfs.
 */
let rig: Rig;
let env: NodeJS.ProcessEnv;

const recipe = (post: string, runscript = 'echo hi') => `%post\n    ${post}\n%runscript\n    ${runscript}\n`;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-up-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache'), CI: '' };
  delete env['CI'];
});
afterEach(() => rig.cleanup());

const up = (args: string[] = []) => rig.spawn(['up', '--progress', 'plain', ...args], { env });
const json = (args: string[] = []) => rig.spawn(['up', '--progress', 'json', ...args], { env });
const events = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown> & { type: string; target?: string; time: string });

/** Starts `up` in the background and waits until its output shows `text`. */
async function upUntil(text: string): Promise<{ pid: number | undefined; stderr: () => string; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, 'up', '--progress', 'plain'], { cwd: rig.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  await new Promise<void>((resolve) => child.stdout.on('data', (c: Buffer) => c.toString().includes(text) && resolve()));
  return { pid: child.pid, stderr: () => stderr, exit };
}

const DIAMOND = `version: 1
targets:
  base:
    from: ./rootfs
    recipe: recipes/base.def
    format: sandbox
  app1:
    from: target:base
    recipe: recipes/app1.def
    format: squashfs
  app2:
    from: target:base
    recipe: recipes/app2.def
    format: sandbox
  combined:
    from: target:app1
    inputs: [target:app2]
    recipe: recipes/combined.def
    format: squashfs
  solo:
    from: ./rootfs
    recipe: recipes/solo.def
    output: dist/solo.simg
`;

function writeDiamond(): void {
  rig.write({
    'orchestrator.yaml': DIAMOND,
    'recipes/base.def': recipe('echo base > /base.txt'),
    'recipes/app1.def': recipe('echo app1 > /app1.txt'),
    'recipes/app2.def': recipe('echo app2 > /app2.txt'),
    'recipes/combined.def': '%files\n    ../build/app2/app2.txt /from-app2.txt\n%runscript\n    cat /from-app2.txt\n',
    'recipes/solo.def': recipe('echo solo > /solo.txt'),
  });
}

describe('orchestrator up', () => {
  it('builds a diamond, then nothing, then exactly what an edit touches', async () => {
    writeDiamond();
    const first = await up();
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^built 5, fresh 0, failed 0, skipped 0, steps from cache \d+ in /m);
    for (const t of ['base', 'app1', 'app2', 'combined', 'solo']) expect(first.stdout).toContain(`${t}: stale: never built`);
    expect(existsSync(rig.path('build/app1.simg'))).toBe(true);
    expect(readFileSync(rig.path('build/app2/app2.txt'), 'utf8')).toBe('app2\n');

    const second = await up();
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/built 0, fresh 5, failed 0, skipped 0/);
    expect(second.stdout).not.toContain('building');

    rig.write({ 'recipes/app2.def': recipe('echo app2-v2 > /app2.txt') });
    const plan = await rig.spawn(['plan', '--json'], { env });
    const planned = JSON.parse(plan.stdout) as { targets: Array<{ name: string; status: string; reasons: Array<{ code: string; message: string; where?: string }> }> };
    expect(planned.targets.filter((t) => t.status === 'stale').map((t) => t.name)).toEqual(['app2', 'combined']);
    expect(planned.targets.find((t) => t.name === 'app2')!.reasons).toEqual([{ code: 'section', message: '%post text changed', where: 'recipes/app2.def:1' }]);
    expect(planned.targets.find((t) => t.name === 'combined')!.reasons).toEqual([{ code: 'source', message: 'dependency app2 would be rebuilt' }]);

    const third = await up();
    expect(third.code).toBe(0);
    expect(third.stdout).toContain('app2: stale: %post text changed (recipes/app2.def:1)');
    expect(third.stdout).toContain('combined: stale: input ../build/app2/app2.txt changed; input target:app2 changed');
    expect(third.stdout).toMatch(/built 2, fresh 3, failed 0, skipped 0/);
    const after = JSON.parse((await rig.spawn(['plan', '--json'], { env })).stdout) as { targets: Array<{ status: string }> };
    expect(after.targets.every((t) => t.status === 'fresh')).toBe(true);
  });

  it('builds independent targets in parallel with -j 2, one at a time with -j 1', async () => {
    rig.write({
      'orchestrator.yaml': `version: 1\ntargets:\n  a:\n    from: ./rootfs\n    recipe: a.def\n    format: squashfs\n  b:\n    from: ./rootfs\n    recipe: b.def\n    format: squashfs\n`,
      'a.def': recipe('sleep 1; echo a > /a'),
      'b.def': recipe('sleep 1; echo b > /b'),
    });
    const spans = (stdout: string) => {
      const ev = events(stdout);
      const span = (t: string) => [
        Date.parse(ev.find((e) => e.type === 'target-started' && e.target === t)!.time),
        Date.parse(ev.find((e) => e.type === 'target-done' && e.target === t)!.time),
      ];
      return [span('a'), span('b')] as const;
    };
    const par = await json(['-j', '2']);
    expect(par.code).toBe(0);
    const [a, b] = spans(par.stdout);
    expect(a[0]! < b[1]! && b[0]! < a[1]!).toBe(true);

    rig.write({ 'a.def': recipe('sleep 1; echo a2 > /a'), 'b.def': recipe('sleep 1; echo b2 > /b') });
    const seq = await json(['-j', '1']);
    expect(seq.code).toBe(0);
    const [a1, b1] = spans(seq.stdout);
    expect(a1[1]! <= b1[0]! || b1[1]! <= a1[0]!).toBe(true);
  });

  it('runs a step shared by two targets once, even when they build at the same time', async () => {
    rig.write({
      'orchestrator.yaml': `version: 1\ntargets:\n  img:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n`,
      'app.def': recipe('sleep 1; echo shared > /shared'),
    });
    const r = await json(['-j', '2']);
    expect(r.code).toBe(0);
    const ev = events(r.stdout);
    expect(ev.filter((e) => e.type === 'step-started' && (e['step'] as { kind: string }).kind === 'post')).toHaveLength(1);
    expect(ev.filter((e) => e.type === 'step-cached' && (e['step'] as { kind: string }).kind === 'post')).toHaveLength(1);
    expect(readFileSync(rig.path('build/box/shared'), 'utf8')).toBe('shared\n');
  });

  it('--keep-going builds what does not depend on a failure, skips its dependents, exits 1', async () => {
    writeDiamond();
    rig.write({ 'recipes/app1.def': recipe('echo failing; exit 3') });
    const r = await up(['--keep-going']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('app1: FAILED');
    expect(r.stdout).toContain('combined: skipped: dependency app1 did not build');
    expect(r.stdout).toMatch(/built 3, fresh 0, failed 1, skipped 1/);
    expect(r.stderr).toContain('recipes/app1.def:1:1: error: %post failed with exit status 3; its last lines:');
    expect(existsSync(rig.path('dist/solo.simg'))).toBe(true);

    const stop = await up();
    expect(stop.code).toBe(1);
    expect(stop.stdout).toMatch(/failed 1/);
  });

  it('stops cleanly on SIGINT: exit 130, previous output and state intact, the next up finishes', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n',
      'app.def': recipe('echo v1 > /v'),
    });
    expect((await up()).code).toBe(0);
    const image = readFileSync(rig.path('build/app.simg'));
    const state = readFileSync(rig.path('.orchestrator/state.json'), 'utf8');
    rig.write({ 'app.def': recipe('echo started; sleep 30; echo v2 > /v') });
    const child = spawn(process.execPath, [BIN, 'up', '--progress', 'plain'], { cwd: rig.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sent = false;
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (!sent && out.includes('| started')) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      child.on('close', (c) => resolve(c));
    });
    expect(code).toBe(130);
    expect(out).toMatch(/interrupted: built 0/);
    expect(readFileSync(rig.path('build/app.simg')).equals(image)).toBe(true);
    expect(readFileSync(rig.path('.orchestrator/state.json'), 'utf8')).toBe(state);
    expect(readdirSync(rig.path('cache/tmp'))).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(rig.dir);
    rig.write({ 'app.def': recipe('echo v2 > /v') });
    const next = await up();
    expect(next.code).toBe(0);
    expect(next.stdout).toMatch(/built 1/);
  });

  it('lets one up at a time build a project', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n',
      'app.def': recipe('echo started; sleep 3'),
    });
    const first = await upUntil('building');
    const second = await up();
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(
      `error: another orchestrator (pid ${first.pid}) is building this project\n  hint: wait for it to finish, or stop it; if pid ${first.pid} is not orchestrator, remove ${rig.path('.orchestrator/lock')}\n`,
    );
    expect(await first.exit).toBe(0);
    expect((await up()).stdout).toMatch(/fresh 1/);
  });

  it('leaves a target stale, never falsely fresh, when an input changes while it builds', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n',
      'app.def': '%files\n    data.txt /data.txt\n%post\n    echo started; sleep 2\n',
      'data.txt': 'v1\n',
    });
    // %files has placed v1 when %post starts; the same-size edit comes after the build read it.
    const first = await upUntil('started');
    writeFileSync(rig.path('data.txt'), 'v2\n');
    expect(await first.exit).toBe(0);
    const second = await up();
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('app: stale: input data.txt changed');
    expect(second.stdout).toMatch(/built 1, fresh 0/);
    const r = await rig.spawn(['exec', 'build/app.simg', 'cat', '/data.txt'], { env });
    expect(r.stdout).toBe('v2\n');
    expect((await up()).stdout).toMatch(/built 0, fresh 1/);
  });

  it('caches nothing of a step whose input changed while it ran, and says so', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n    inputs: [data.txt]\n',
      'app.def': '%post\n    echo started; sleep 2\n',
      'data.txt': 'v1\n',
    });
    const first = await upUntil('started');
    writeFileSync(rig.path('data.txt'), 'v2\n');
    expect(await first.exit).toBe(1);
    const stderr = first.stderr();
    expect(stderr).toContain(`app.def:1:1: error: ${rig.path('data.txt')} changed while the %post step was using it; nothing of this step was cached`);
    expect(stderr).toContain('hint: run the build again once the file stays put');
    expect(existsSync(rig.path('build/app.simg'))).toBe(false);
    const again = await up();
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/built 1, fresh 0, failed 0, skipped 0, steps from cache 0/);
  });

  it('refuses to overwrite a sandbox modified by hand, and lists the changes; --force discards them', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  dev:\n    from: ./rootfs\n    recipe: dev.def\n    format: sandbox\n',
      'dev.def': recipe('echo v1 > /v'),
    });
    expect((await up()).code).toBe(0);
    writeFileSync(rig.path('build/dev/handmade.txt'), 'mine');
    writeFileSync(rig.path('build/dev/v'), 'edited');
    rig.write({ 'dev.def': recipe('echo v2 > /v') });
    const r = await up();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('orchestrator.yaml:3:3: error: sandbox build/dev/ was modified by hand since it was built (2 changes):\n  A handmade.txt\n  M v\n');
    expect(r.stderr).toContain("hint: move the changes into the recipe, or run 'orchestrator up --force dev' to discard them");
    expect(readFileSync(rig.path('build/dev/handmade.txt'), 'utf8')).toBe('mine');
    const forced = await up(['--force']);
    expect(forced.code).toBe(0);
    expect(existsSync(rig.path('build/dev/handmade.txt'))).toBe(false);
    expect(readFileSync(rig.path('build/dev/v'), 'utf8')).toBe('v2\n');
  });

  it('runs target:NAME images of the manifest', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n',
      'app.def': recipe('true', 'echo "from the target $1"'),
    });
    expect((await up()).code).toBe(0);
    const r = await rig.spawn(['run', 'target:app', 'x'], { env });
    expect(r.stdout).toBe('from the target x\n');
    const bad = await rig.spawn(['exec', 'target:ap', 'true'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("error: unknown target 'ap'\n  hint: did you mean 'app'?\n");
  });

  it('exits 2 with the diagnostics on a broken recipe, building nothing', async () => {
    writeDiamond();
    rig.write({ 'recipes/solo.def': '%post\n  echo\n%rnuscript\n  echo\n' });
    const r = await up();
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("recipes/solo.def:3:1: error: %rnuscript is not a section\n  %rnuscript\n  ^~~~~~~~~~\n  hint: did you mean '%runscript'?\n1 error\n");
    expect(existsSync(rig.path('build'))).toBe(false);
    expect(existsSync(rig.path('.orchestrator/state.json'))).toBe(false);
  });
});

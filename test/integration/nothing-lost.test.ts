import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { Rig } from '../helpers/rig.js';

/**
 * Nothing lost (issue 20): orchestrator replaces or removes only what its records say it wrote; a
 * sandbox changed by hand whose recipe changed too stops the run; a run killed with SIGKILL leaves
 * nothing the next run mistakes (temp files are swept, a finished export is known as ours).
 */
let rig: Rig;
let env: NodeJS.ProcessEnv;

const recipe = (post: string, runscript = 'echo hi') => `%post\n    ${post}\n%runscript\n    ${runscript}\n`;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-lost-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache') };
  delete env['CI'];
});
afterEach(() => rig.cleanup());

/** `up` with plain lines, their timestamps taken off. */
const up = async (args: string[] = []) => {
  const r = await rig.spawn(['up', '--progress', 'plain', ...args], { env });
  return { ...r, stdout: r.stdout.replace(/^\d\d:\d\d:\d\d\.\d{3} /gm, '') };
};

/** `up --progress json` in the background; `kill9` kills the CLI process itself. */
function upChild(args: string[] = []): { lines: () => string[]; kill9: () => void; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, 'up', '--progress', 'json', ...args], { cwd: rig.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', () => undefined);
  return {
    lines: () => out.split('\n').filter(Boolean),
    kill9: () => child.kill('SIGKILL'),
    exit: new Promise((resolve) => child.on('close', (code) => resolve(code))),
  };
}

async function until(what: () => boolean): Promise<void> {
  while (!what()) await sleep(5);
}

describe('outputs orchestrator did not write', () => {
  it('refuses to replace a folder it never wrote, naming what is there; --force takes it over once, saying what is lost', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  thesis:\n    from: ./rootfs\n    recipe: t.def\n    format: sandbox\n    output: mydata/\n',
      't.def': recipe('echo built > /built.txt'),
      'mydata/thesis.tex': '\\documentclass{book}\n',
    });
    const r = await up();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('thesis: stale: never built\nthesis: FAILED\n');
    expect(r.stdout).toMatch(/^built 0, fresh 0, failed 1, skipped 0, /m);
    expect(r.stderr).toBe(
      'orchestrator.yaml:7:13: error: mydata/ already exists and orchestrator did not write it (1 entry, 21 B: thesis.tex); it is left as it is\n' +
        '      output: mydata/\n' +
        '              ^~~~~~~\n' +
        "  hint: move it away or point 'output:' elsewhere; or run 'orchestrator up --force thesis' to replace it (what is there is lost)\n",
    );
    expect(readFileSync(rig.path('mydata/thesis.tex'), 'utf8')).toBe('\\documentclass{book}\n');
    expect(readdirSync(rig.path('mydata'))).toEqual(['thesis.tex']);

    const forced = await up(['--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('thesis: stale: never built; taking over mydata/, not written by orchestrator (--force): replacing 1 entry, 21 B: thesis.tex\n');
    expect(existsSync(rig.path('mydata/thesis.tex'))).toBe(false);
    expect(readFileSync(rig.path('mydata/built.txt'), 'utf8')).toBe('built\n');
    // Once: from now on it is ours, and a plain up is fresh, or rebuilds it without asking.
    expect((await up()).stdout).toContain('thesis: fresh\n');
    rig.write({ 't.def': recipe('echo v2 > /built.txt') });
    const again = await up();
    expect(again.code).toBe(0);
    expect(readFileSync(rig.path('mydata/built.txt'), 'utf8')).toBe('v2\n');
  });

  it('takes an empty folder silently: nothing is lost', async () => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: b.def\n    format: sandbox\n    output: out/box/\n', 'b.def': recipe('true') });
    mkdirSync(rig.path('out/box'), { recursive: true });
    const r = await up();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('box: stale: never built\n');
    expect(existsSync(rig.path('out/box/.singularity.d'))).toBe(true);
  });

  it('refuses a file in the way of an image, and an image whose output moved onto a file it did not write', async () => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: a.def\n    format: squashfs\n    output: dist/app.simg\n', 'a.def': recipe('true') });
    expect((await up()).code).toBe(0);
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: a.def\n    format: squashfs\n    output: dist/mine.simg\n', 'dist/mine.simg': 'precious' });
    const r = await up();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: dist/mine.simg already exists and orchestrator did not write it (1 entry, 8 B); it is left as it is\n');
    expect(readFileSync(rig.path('dist/mine.simg'), 'utf8')).toBe('precious');
  });

  it('a folder where a squashfs image goes: empty, it is replaced by the image; with files, it is refused, and --force replaces it', async () => {
    const manifest = 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: a.def\n    format: squashfs\n    output: dist/app.simg\n';
    rig.write({ 'orchestrator.yaml': manifest, 'a.def': recipe('true') });
    mkdirSync(rig.path('dist/app.simg'), { recursive: true });
    const empty = await up();
    expect(empty.code, empty.stderr).toBe(0);
    expect(statSync(rig.path('dist/app.simg')).isFile()).toBe(true);
    rmSync(rig.path('dist/app.simg'));
    rig.write({ 'dist/app.simg/notes.txt': 'mine' });
    const refused = await up();
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('error: dist/app.simg already exists and orchestrator did not write it (1 entry, 4 B: notes.txt); it is left as it is\n');
    expect(readFileSync(rig.path('dist/app.simg/notes.txt'), 'utf8')).toBe('mine');
    const forced = await up(['--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(statSync(rig.path('dist/app.simg')).isFile()).toBe(true);
  });

  it('clean removes only recorded outputs, and says which paths it left alone', async () => {
    const abs = rig.path('abs/folder');
    rig.write({
      'orchestrator.yaml': `version: 1\ntargets:\n  data:\n    from: ./rootfs\n    recipe: d.def\n    format: sandbox\n    output: ${abs}/\n  app:\n    from: ./rootfs\n    recipe: d.def\n    format: squashfs\n`,
      'd.def': recipe('true'),
      'abs/folder/results.csv': '1,2,3\n',
      'abs/folder/raw/run1.dat': 'data',
    });
    expect((await up(['app'])).code).toBe(0);
    const r = await rig.spawn(['clean'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('left abs/folder/ alone: orchestrator has no record of writing it\nremoved build/app.simg\n');
    expect(readFileSync(rig.path('abs/folder/results.csv'), 'utf8')).toBe('1,2,3\n');
    expect(readFileSync(rig.path('abs/folder/raw/run1.dat'), 'utf8')).toBe('data');
    expect(existsSync(rig.path('build/app.simg'))).toBe(false);

    // Taken over with --force, it is ours: clean removes it.
    expect((await up(['--force', 'data'])).code).toBe(0);
    const again = await rig.spawn(['clean', 'data'], { env });
    expect(again.stdout).toBe('removed abs/folder/\n');
    expect(existsSync(abs)).toBe(false);
  });

  it('orchestrator build OUT SOURCE still refuses an existing OUT without --force', async () => {
    rig.write({ 'mydata/thesis.tex': 'mine' });
    const r = await rig.spawn(['build', '--sandbox', 'mydata', 'rootfs'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: mydata already exists\n  hint: add --force to replace it, or choose another name\n');
    expect(readdirSync(rig.path('mydata'))).toEqual(['thesis.tex']);
  });
});

describe('a dependency sandbox modified by hand', () => {
  const MANIFEST = 'version: 1\ntargets:\n  mid:\n    from: ./rootfs\n    recipe: mid.def\n    format: sandbox\n  app1:\n    from: target:mid\n    recipe: app1.def\n    format: squashfs\n';

  it('is used as it is when its recipe is unchanged', async () => {
    rig.write({ 'orchestrator.yaml': MANIFEST, 'mid.def': recipe('echo v1 > /v'), 'app1.def': recipe('true', 'cat /v /hand.txt') });
    expect((await up()).code).toBe(0);
    writeFileSync(rig.path('build/mid/hand.txt'), 'by hand\n');
    const r = await up(['app1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('mid: modified by hand (1 change); used as it is\n');
    expect((await rig.spawn(['run', 'target:app1'], { env })).stdout).toBe('v1\nby hand\n');
  });

  it('stops when its recipe changed too, saying both, and loses nothing', async () => {
    rig.write({ 'orchestrator.yaml': MANIFEST, 'mid.def': recipe('echo v1 > /v'), 'app1.def': recipe('true', 'cat /v') });
    expect((await up()).code).toBe(0);
    const image = readFileSync(rig.path('build/app1.simg'));
    writeFileSync(rig.path('build/mid/hand.txt'), 'by hand\n');
    rig.write({ 'mid.def': recipe('echo v2 > /v') });
    const r = await up(['app1']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('mid: FAILED\n');
    expect(r.stdout).toContain('app1: skipped: dependency mid did not build\n');
    expect(r.stderr).toBe(
      'orchestrator.yaml:3:3: error: sandbox build/mid/ was modified by hand since it was built (1 change):\n' +
        '  A hand.txt\n' +
        'and it is stale besides: %post text changed (mid.def:1)\n' +
        'app1 is built from it: as it is, it would miss that change; rebuilt, the hand-made changes are lost\n' +
        '    mid:\n' +
        '    ^~~\n' +
        "  hint: move the changes into the recipe, or run 'orchestrator up --force mid' to discard them\n",
    );
    expect(readFileSync(rig.path('build/mid/hand.txt'), 'utf8')).toBe('by hand\n');
    expect(readFileSync(rig.path('build/app1.simg')).equals(image)).toBe(true);

    // The way on that the hint gives.
    expect((await up(['--force', 'mid'])).code).toBe(0);
    expect(existsSync(rig.path('build/mid/hand.txt'))).toBe(false);
    expect((await up(['app1'])).code).toBe(0);
    expect((await rig.spawn(['run', 'target:app1'], { env })).stdout).toBe('v2\n');
  });
});

describe('after kill -9', () => {
  it('sweeps the temp of a killed squashfs export, in up and in clean', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n    output: dist/app.simg\n',
      'app.def': recipe('dd if=/dev/urandom of=/big bs=1M count=48 2>/dev/null'),
    });
    const temps = () => readdirSync(rig.path('dist')).filter((n) => n.startsWith('.app.simg.tmp-'));
    for (const next of ['up', 'clean'] as const) {
      const run = upChild();
      await until(() => existsSync(rig.path('dist')) && temps().length > 0);
      run.kill9();
      await run.exit;
      expect(temps()).toHaveLength(1);
      const r = next === 'up' ? await up() : await rig.spawn(['clean'], { env });
      expect(r.code).toBe(0);
      expect(temps()).toEqual([]);
      if (next === 'up') expect(statSync(rig.path('dist/app.simg')).size).toBeGreaterThan(0);
      rig.write({ 'app.def': recipe('dd if=/dev/urandom of=/big bs=1M count=48 2>/dev/null; echo 2') });
    }
  });

  it('knows a sandbox whose export finished before the kill as its own: stale, never modified by hand', async () => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  dev:\n    from: ./rootfs\n    recipe: dev.def\n    format: sandbox\n', 'dev.def': recipe('echo v1 > /v') });
    expect((await up()).code).toBe(0);
    // The process is held between the export and its record: the tree listing it writes then is a fifo.
    const listing = rig.path('.orchestrator/trees/dev.json');
    const saved = readFileSync(listing);
    rmSync(listing);
    execFileSync('mkfifo', [listing]);
    rig.write({ 'dev.def': recipe('echo v2 > /v') });
    const run = upChild();
    await until(() => run.lines().some((l) => l.includes('"type":"export-done"')));
    // Past its export, and held at the fifo before its record: kill it there.
    run.kill9();
    await run.exit;
    rmSync(listing);
    writeFileSync(listing, saved);
    expect(readFileSync(rig.path('build/dev/v'), 'utf8')).toBe('v2\n');
    const r = await up();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dev: stale: %post text changed (dev.def:1); the last build was stopped before it was recorded; it is written again\n');
    expect(r.stdout).not.toContain('modified by hand');
    expect((await up()).stdout).toContain('dev: fresh\n');
  });

  it('knows the output of a first build killed before its record as its own', async () => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  dev:\n    from: ./rootfs\n    recipe: dev.def\n    format: sandbox\n', 'dev.def': recipe('echo v1 > /v') });
    mkdirSync(rig.path('.orchestrator/trees'), { recursive: true });
    execFileSync('mkfifo', [rig.path('.orchestrator/trees/dev.json')]);
    const run = upChild();
    await until(() => run.lines().some((l) => l.includes('"type":"export-done"')));
    run.kill9();
    await run.exit;
    rmSync(rig.path('.orchestrator/trees/dev.json'));
    expect(existsSync(rig.path('build/dev/v'))).toBe(true);
    const r = await up();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dev: stale: never built\n');
    expect(r.stdout).toMatch(/built 1, fresh 0, failed 0/);
  });
});

import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { Rig } from '../helpers/rig.js';

/**
 * The no-op witness of `up` (src/freshness/witness.ts) end to end: a run that finds everything fresh
 * leaves one, the next no-op run is answered from it, and every kind of change to what the full
 * check reads makes `up` check in full again and reach the full check's verdict. Real builds, real
 * overlay mounts and mksquashfs, a busybox root folder as the base.
 */
let rig: Rig;
let env: NodeJS.ProcessEnv;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-witness-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache') };
  delete env['CI'];
  rig.write({
    'orchestrator.yaml': `version: 1
targets:
  box:
    from: ./rootfs
    recipe: recipes/box.def
    format: sandbox
    inputs: [linked]
  img:
    from: target:box
    recipe: recipes/img.def
    format: squashfs
`,
    'recipes/box.def': '%files\n    ../data/a.txt /a.txt\n    ../data/*.csv /tmp\n%runscript\n    cat /a.txt\n',
    'recipes/img.def': '%runscript\n    cat /a.txt\n',
    'data/a.txt': 'one\n',
    'data/x.csv': '1,2\n',
    'inputs-v1/model': 'v1\n',
    'inputs-v2/model': 'v2\n',
  });
  symlinkSync('inputs-v1', rig.path('linked'));
});
afterEach(() => rig.cleanup());

interface Run {
  code: number | null;
  stderr: string;
  summary: { built: number; fresh: number; failed: number; fromWitness?: boolean };
  stale: Record<string, string[]>;
  fresh: string[];
}

async function up(args: string[] = []): Promise<Run> {
  const r = await rig.spawn(['up', '--progress', 'json', ...args], { env });
  const events = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { type: string; target?: string; summary?: Run['summary']; reasons?: Array<{ message: string }> });
  const stale: Record<string, string[]> = {};
  for (const e of events) if (e.type === 'target-stale') stale[e.target!] = e.reasons!.map((x) => x.message);
  return {
    code: r.code,
    stderr: r.stderr,
    summary: events.find((e) => e.type === 'run-done')?.summary ?? { built: -1, fresh: -1, failed: -1 },
    stale,
    fresh: events.filter((e) => e.type === 'target-fresh').map((e) => e.target!),
  };
}

/**
 * Builds everything. A build that succeeds checks again, silently, as the next `up` would: that
 * next `up` is answered from the witness.
 */
async function builtAndWitnessed(): Promise<void> {
  const first = await up();
  expect(first.stderr).toBe('');
  expect(first.summary).toMatchObject({ built: 2, failed: 0 });
  const fast = await up();
  expect(fast.code).toBe(0);
  expect(fast.summary).toMatchObject({ built: 0, fresh: 2, failed: 0, fromWitness: true });
  expect(fast.fresh).toEqual(['box', 'img']);
}

/** The clock tick after which a change is sure to get a new ctime. */
const tick = () => new Promise((r) => setTimeout(r, 20));

describe('the no-op witness of up', () => {
  it('answers a no-op up with the same output as the full check', async () => {
    await builtAndWitnessed();
    const plain = await rig.spawn(['up', '--progress', 'plain'], { env });
    rmSync(rig.path('.orchestrator/witness.json'));
    const full = await rig.spawn(['up', '--progress', 'plain'], { env });
    const norm = (s: string) =>
      s
        .replace(/ in \d+ ms/, ' in N ms')
        .replace(/^\d\d:\d\d:\d\d\.\d{3} /gm, '')
        .split('\n')
        .sort();
    expect(norm(plain.stdout)).toEqual(norm(full.stdout));
    expect(plain.stdout).toMatch(/^\S+ box: fresh\n\S+ img: fresh\nbuilt 0, fresh 2, failed 0, skipped 0, steps from cache 0 in \d+ ms\n$/);
  });

  it.each<[string, () => void]>([
    ['the manifest touched', () => utimesSync(rig.path('orchestrator.yaml'), new Date(), new Date())],
    ['a recipe rewritten as it was', () => writeFileSync(rig.path('recipes/img.def'), '%runscript\n    cat /a.txt\n')],
    ['an input file touched', () => utimesSync(rig.path('data/a.txt'), new Date(0), new Date(0))],
    ['the base folder touched', () => utimesSync(rig.path('rootfs/etc/passwd'), new Date(0), new Date(0))],
    ['orchestrator.lock written', () => writeFileSync(rig.path('orchestrator.lock'), '{ "version": 1, "images": {} }\n')],
  ])('checks in full after %s, finds everything fresh, and is answered from the witness again', async (_, change) => {
    await builtAndWitnessed();
    await tick();
    change();
    const full = await up();
    expect(full.code).toBe(0);
    expect(full.summary).toMatchObject({ built: 0, fresh: 2 });
    expect(full.summary.fromWitness).toBeUndefined();
    expect((await up()).summary.fromWitness).toBe(true);
  });

  it.each<[string, () => void, Record<string, string[]>]>([
    ['a same-size edit of an input', () => writeFileSync(rig.path('data/a.txt'), 'two\n'), { box: ['input ../data/a.txt changed'] }],
    ['a new file a glob matches', () => writeFileSync(rig.path('data/y.csv'), '3\n'), { box: ['input ../data/*.csv changed'] }],
    ['a symlinked input pointed elsewhere', () => (rmSync(rig.path('linked')), symlinkSync('inputs-v2', rig.path('linked'))), { box: ['input linked changed'] }],
    ['the squashfs output removed', () => rmSync(rig.path('build/img.simg')), { img: ['output missing'] }],
    // Also not served from the parsed manifest cache (.orchestrator/parsed.json).
    ['a same-size edit of a recipe', () => writeFileSync(rig.path('recipes/img.def'), '%runscript\n    cat /b.txt\n'), { img: ['%runscript text changed'] }],
  ])('checks in full after %s and rebuilds what it touches', async (_, change, stale) => {
    await builtAndWitnessed();
    await tick();
    change();
    const r = await up();
    expect(r.stderr).toBe('');
    expect(r.summary.fromWitness).toBeUndefined();
    for (const [target, reasons] of Object.entries(stale)) for (const reason of reasons) expect(r.stale[target]?.join('; ')).toContain(reason);
    expect(r.summary.failed).toBe(0);
    expect(r.summary.built).toBeGreaterThanOrEqual(Object.keys(stale).length);
  });

  it('sees a sandbox modified by hand and refuses, as the full check does', async () => {
    await builtAndWitnessed();
    await tick();
    writeFileSync(rig.path('build/box/a.txt'), 'mine\n');
    const r = await up();
    expect(r.code).toBe(1);
    expect(r.summary.fromWitness).toBeUndefined();
    expect(r.stale['box']?.join('; ')).toMatch(/sandbox modified by hand since build \(1 change: a.txt\)/);
  });

  it('is not used for other targets or options, for --force, or while another up holds the project', async () => {
    await builtAndWitnessed();
    expect((await up(['img'])).summary.fromWitness).toBeUndefined();
    // The witness is now of `up img`; plain `up` checks in full, and --notest is another key.
    expect((await up()).summary.fromWitness).toBeUndefined();
    expect((await up()).summary.fromWitness).toBe(true);
    expect((await up(['--notest'])).summary.fromWitness).toBeUndefined();
    const forced = await up(['--force']);
    expect(forced.summary).toMatchObject({ built: 2 });
    expect((await up()).summary.fromWitness).toBeUndefined();
    expect((await up()).summary.fromWitness).toBe(true);
    const holder = spawn('sleep', ['30']);
    try {
      writeFileSync(rig.path('.orchestrator/lock'), `${holder.pid}\n`);
      const r = await rig.spawn(['up', '--progress', 'plain'], { env });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`error: another orchestrator (pid ${holder.pid}) is building this project`);
    } finally {
      holder.kill();
    }
  });

  it('is not left by a run that printed warnings: every such run checks in full and warns again', async () => {
    await builtAndWitnessed();
    rig.write({ 'recipes/img.def': '%files\n    ../data/a.txt /b.txt extra\n%runscript\n    cat /a.txt\n' });
    expect((await up()).summary).toMatchObject({ built: 1, fresh: 1 });
    for (let i = 0; i < 2; i++) {
      const r = await up();
      expect(r.summary).toMatchObject({ built: 0, fresh: 2 });
      expect(r.summary.fromWitness).toBeUndefined();
      expect(r.stderr).toContain("warning: a %files line is 'SOURCE [DESTINATION]'; 'extra' is ignored");
    }
  });

  it('after clean builds again, and that build leaves the witness for the next up', async () => {
    await builtAndWitnessed();
    const cleaned = await rig.spawn(['clean', 'img'], { env });
    expect(cleaned.code).toBe(0);
    const r = await up();
    expect(r.summary).toMatchObject({ built: 1, fresh: 1 });
    expect(r.summary.fromWitness).toBeUndefined();
    expect((await up()).summary).toMatchObject({ built: 0, fresh: 2, fromWitness: true });
  });

  it('keeps the witness with the project named by -C or -f, whatever the current folder', async () => {
    await builtAndWitnessed();
    const fromAbove = await rig.spawn(['up', '--progress', 'json', '-C', rig.dir], { env, cwd: '/' });
    expect(fromAbove.code).toBe(0);
    // The key holds the manifest's absolute path, so the current folder does not matter.
    expect(JSON.parse(fromAbove.stdout.trim().split('\n').at(-1)!)).toMatchObject({ summary: { built: 0, fresh: 2, fromWitness: true } });
    const again = await rig.spawn(['up', '--progress', 'json', '-f', rig.path('orchestrator.yaml')], { env, cwd: '/' });
    expect(JSON.parse(again.stdout.trim().split('\n').at(-1)!)).toMatchObject({ summary: { fresh: 2, fromWitness: true } });
  });

  it('is not left by a build whose manifest changed while it ran', async () => {
    rig.write({ 'recipes/img.def': '%post\n    echo started; sleep 1\n%runscript\n    cat /a.txt\n' });
    const building = spawn(process.execPath, [BIN, 'up', '--progress', 'plain'], { cwd: rig.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve) => building.stdout.on('data', (c: Buffer) => c.toString().includes('started') && resolve()));
    utimesSync(rig.path('orchestrator.yaml'), new Date(), new Date());
    expect(await new Promise((resolve) => building.on('close', resolve))).toBe(0);
    expect((await up()).summary.fromWitness).toBeUndefined();
  });
});

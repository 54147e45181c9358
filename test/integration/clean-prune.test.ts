import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { Rig } from '../helpers/rig.js';

let rig: Rig;
let env: NodeJS.ProcessEnv;
const recipe = (post: string) => `%post\n    ${post}\n%runscript\n    echo hi\n`;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-clean-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache') };
  delete env['CI'];
  rig.write({
    'orchestrator.yaml': 'version: 1\ntargets:\n  a:\n    from: ./rootfs\n    recipe: a.def\n    format: squashfs\n  b:\n    from: ./rootfs\n    recipe: b.def\n    format: sandbox\n',
    'a.def': recipe('echo a > /a'),
    'b.def': recipe('echo b1 > /b'),
  });
});
afterEach(() => rig.cleanup());

const cli = (args: string[]) => rig.spawn(args, { env });
const snapshots = () => readdirSync(rig.path('cache/snapshots')).filter((n) => n !== 'empty').sort();

describe('clean', () => {
  it('removes outputs and their state; the next up reuses every cached step', async () => {
    expect((await cli(['up'])).code).toBe(0);
    const r = await cli(['clean', 'b']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('removed build/b/\n');
    expect(existsSync(rig.path('build/b'))).toBe(false);
    expect(existsSync(rig.path('build/a.simg'))).toBe(true);
    const state = JSON.parse(readFileSync(rig.path('.orchestrator/state.json'), 'utf8')) as { targets: Record<string, unknown> };
    expect(Object.keys(state.targets)).toEqual(['a']);
    const again = await cli(['up', '--progress', 'plain']);
    expect(again.stdout).toContain('b: stale: never built');
    expect(again.stdout).toContain('b: built in');
    expect(again.stdout).toContain('(0 steps run, 2 from cache)');
  });
});

describe('cache prune', () => {
  it('removes what no build uses any more and keeps what the project uses', async () => {
    expect((await cli(['up'])).code).toBe(0);
    const before = snapshots();
    rig.write({ 'b.def': recipe('echo b2 > /b') });
    expect((await cli(['up'])).code).toBe(0);
    const after = snapshots();
    // Snapshots of b's first build: no longer named in the project's state.
    const state = readFileSync(rig.path('.orchestrator/state.json'), 'utf8');
    const stale = before.filter((s) => !state.includes(s));
    expect(stale.length).toBeGreaterThan(0);

    const dry = await cli(['cache', 'prune', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(snapshots()).toEqual(after);
    for (const s of stale) expect(dry.stdout).toContain(`would remove snapshot ${s}`);

    const r = await cli(['cache', 'prune']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/freed .*; \d+ entries kept \(used by a project\)/);
    for (const s of stale) expect(snapshots()).not.toContain(s);
    const up = await cli(['up', '--progress', 'plain']);
    expect(up.stdout).toMatch(/built 0, fresh 2/);
    // Still cached: rebuilding b from scratch runs no step.
    rig.write({ 'b.def': recipe('echo b2 > /b') });
    await cli(['clean', 'b']);
    expect((await cli(['up', '--progress', 'plain'])).stdout).toContain('(0 steps run, 2 from cache)');
  });

  it('keeps recently used entries with --older-than, and refuses while the cache is in use', async () => {
    expect((await cli(['up'])).code).toBe(0);
    rig.write({ 'b.def': recipe('echo b2 > /b') });
    expect((await cli(['up'])).code).toBe(0);
    const count = snapshots().length;
    const r = await cli(['cache', 'prune', '--older-than', '1d']);
    expect(r.code).toBe(0);
    expect(snapshots()).toHaveLength(count);

    const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(rig.path(`cache/tmp/${holder.pid}-active`), `${holder.pid}\n`);
      const busy = await cli(['cache', 'prune']);
      expect(busy.code).toBe(1);
      expect(busy.stderr).toBe(`error: the cache is in use by orchestrator (pid ${holder.pid})\n  hint: prune when those builds have finished\n`);
      expect(snapshots()).toHaveLength(count);
    } finally {
      holder.kill();
    }
  });

  it('rejects a bad duration or size', async () => {
    const r = await cli(['cache', 'prune', '--older-than', '7days']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("error: --older-than '7days' is not a duration\n  hint: write a number and a unit: 30m, 12h, 7d, 2w\n");
  });
});

import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { Rig } from '../helpers/rig.js';

/**
 * `%files . DEST` (the neurodocker pattern) through the built CLI: the project's state folder, the
 * cache (here inside the project) and the target's own output are never copied nor read as an
 * input, and neither is what `.orchestratorignore` lists; so a second `up` has nothing to do.
 */
let rig: Rig;
let env: NodeJS.ProcessEnv;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-ignore-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache') };
  delete env['CI'];
});
afterEach(() => rig.cleanup());

type Event = Record<string, unknown> & { type: string; target?: string };
const events = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as Event);

describe('%files . DEST', () => {
  it('copies neither the state, the cache, the output nor ignored paths, and the second up is a no-op', async () => {
    rig.write({
      'orchestrator.yaml': `version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n`,
      'app.def': '%files\n    . /home/bm\n%post\n    echo ran >> /post-runs\n',
      '.orchestratorignore': '# scratch work\nscratch/\n*.log\n!keep.log\nrootfs\n',
      'data.txt': 'data\n',
      'keep.log': 'kept\n',
      'other.log': 'left out\n',
      'scratch/notes.txt': 'left out\n',
    });
    const first = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    // Nor build/, which holds nothing but outputs.
    expect(readdirSync(rig.path('build/box/home/bm')).sort()).toEqual(['.orchestratorignore', 'app.def', 'data.txt', 'keep.log', 'orchestrator.yaml']);

    const second = await rig.spawn(['up', '--progress', 'json'], { env });
    expect(second.code).toBe(0);
    const ev = events(second.stdout);
    expect(ev.filter((e) => e.type === 'step-started')).toEqual([]);
    expect(ev.filter((e) => e.type === 'target-fresh').map((e) => e.target)).toEqual(['box']);
    // The image holds no state folder and no earlier output.
    // The folder of the outputs comes along, empty, as cp -r would copy an empty folder.
    expect(readdirSync(rig.path('build/box/home/bm')).sort()).toEqual(['.orchestratorignore', 'app.def', 'data.txt', 'keep.log', 'orchestrator.yaml']);
    expect(existsSync(rig.path('build/box/home/bm/build'))).toBe(false);
    expect(existsSync(rig.path('build/box/home/bm/.orchestrator'))).toBe(false);

    const plan = await rig.spawn(['plan'], { env });
    expect(plan.stdout).toContain('1. box: fresh\n');
    expect(plan.stdout).toContain('ignored: .orchestratorignore (4 patterns)\n');
    const json = JSON.parse((await rig.spawn(['plan', '--json'], { env })).stdout) as { ignored: unknown; targets: Array<{ status: string }> };
    expect(json.ignored).toEqual({ file: '.orchestratorignore', patterns: 4 });

    // An ignored path edited: still fresh. A copied one: stale.
    rig.write({ 'scratch/notes.txt': 'changed\n', 'other.log': 'changed\n', 'scratch/new.txt': 'new\n' });
    expect((await rig.spawn(['plan'], { env })).stdout).toContain('1. box: fresh\n');
    rig.write({ 'data.txt': 'changed\n' });
    const stale = await rig.spawn(['plan'], { env });
    expect(stale.stdout).toContain('1. box: stale\n');
    expect(stale.stdout).toContain('why:     input . changed');
  });

  it('into an existing folder copies the contents, as cp -r . DEST does (not DEST/<project>)', async () => {
    mkdirSync(rig.path('rootfs/srv'));
    rig.write({
      'orchestrator.yaml': `version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n`,
      'app.def': '%files\n    . /srv\n    sub/. /opt/\n',
      '.orchestratorignore': 'rootfs\n',
      'data.txt': 'data\n',
      'sub/inner.txt': 'inner\n',
    });
    mkdirSync(rig.path('rootfs/opt'));
    const up = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    expect(readdirSync(rig.path('build/box/srv')).sort()).toEqual(['.orchestratorignore', 'app.def', 'data.txt', 'orchestrator.yaml', 'sub']);
    expect(readdirSync(rig.path('build/box/opt'))).toEqual(['inner.txt']);
  });
});

import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { Rig } from '../helpers/rig.js';

/**
 * Steps two targets share, through the built CLI on a busybox root folder: a failing one runs
 * once in a run and fails both targets with the same diagnostic; the provenance labels name the
 * source used (`from:`), not the recipe header it replaced.
 */
let rig: Rig;
let env: NodeJS.ProcessEnv;

beforeEach(async () => {
  rig = await Rig.create('orchestrator-shared-');
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  env = { ...process.env, ORCHESTRATOR_CACHE: rig.path('cache') };
  delete env['CI'];
});
afterEach(() => rig.cleanup());

type Event = Record<string, unknown> & { type: string; target?: string; step?: { kind: string }; error?: { message: string; reason: string } };
const events = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as Event);

describe('a step shared by two targets', () => {
  it('runs once when it fails, and both targets fail with its diagnostic', async () => {
    rig.write({
      'orchestrator.yaml': `version: 1\ntargets:\n  img:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n`,
      'app.def': '%post\n    exit 3\n',
    });
    for (const jobs of ['2', '1']) {
      // Which target runs the step at -j 2 is a race: count each run's logs alone.
      rmSync(rig.path('.orchestrator/logs'), { recursive: true, force: true });
      const r = await rig.spawn(['up', '--progress', 'json', '--keep-going', '-j', jobs], { env });
      expect(r.code).toBe(1);
      const ev = events(r.stdout);
      expect(ev.filter((e) => e.type === 'step-started' && e.step?.kind === 'post')).toHaveLength(1);
      const failed = ev.filter((e) => e.type === 'target-failed');
      expect(failed.map((e) => e.target).sort()).toEqual(['box', 'img']);
      expect(failed[0]!.error).toEqual(failed[1]!.error);
      expect(failed[0]!.error!.message).toBe('%post failed with exit status 3; its last lines:\n+ exit 3');
      // One log of the %post, in the target that ran it.
      const logs = ['img', 'box'].flatMap((t) => {
        try {
          return readdirSync(rig.path(`.orchestrator/logs/${t}`)).filter((f) => f.endsWith('-post.log'));
        } catch {
          return [];
        }
      });
      expect(logs).toHaveLength(1);
    }
  });
});

describe('provenance labels', () => {
  it('name the source used when from: replaces the recipe header, and keep the header under deffile.header', async () => {
    rig.write({
      'orchestrator.yaml': `version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n`,
      'app.def': 'Bootstrap: library\nFrom: debian:9\n\n%runscript\n    echo hi\n',
    });
    const r = await rig.spawn(['up', '--progress', 'plain'], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const labels = JSON.parse(readFileSync(rig.path('build/box/.singularity.d/labels.json'), 'utf8')) as Record<string, string>;
    const deffile = Object.fromEntries(Object.entries(labels).filter(([k]) => k.startsWith('org.label-schema.usage.singularity.deffile')));
    expect(deffile).toEqual({
      'org.label-schema.usage.singularity.deffile': 'Singularity',
      'org.label-schema.usage.singularity.deffile.bootstrap': 'localimage',
      'org.label-schema.usage.singularity.deffile.from': './rootfs',
      'org.label-schema.usage.singularity.deffile.header.bootstrap': 'library',
      'org.label-schema.usage.singularity.deffile.header.from': 'debian:9',
    });
  });
});

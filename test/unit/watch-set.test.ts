import { describe, expect, it } from 'vitest';
import { loadProject } from '../../src/manifest/load-project.js';
import { loadRecipes } from '../../src/manifest/load-recipes.js';
import { shellGlob } from '../../src/watch/shell-glob.js';
import { WatchSet } from '../../src/watch/watch-set.js';
import { Rig } from '../helpers/rig.js';

describe('shellGlob', () => {
  it('watches the fixed folder and matches paths, and paths inside matched folders', () => {
    const g = shellGlob('/p/recipes', '../data/*.txt');
    expect(g.folder).toBe('/p/data');
    expect(g.matches('/p/data/a.txt')).toBe(true);
    expect(g.matches('/p/data/a.md')).toBe(false);
    expect(g.matches('/p/data/sub/a.txt')).toBe(false);
    expect(g.matches('/p/other/a.txt')).toBe(false);
    const d = shellGlob('/p', 'conf/[ab]?/x*');
    expect(d.folder).toBe('/p/conf');
    expect(d.matches('/p/conf/a1/x.yaml')).toBe(true);
    expect(d.matches('/p/conf/a1/xdir/deep/file')).toBe(true);
    expect(d.matches('/p/conf/c1/x.yaml')).toBe(false);
    expect(shellGlob('/p', 'f[!0-9].c').matches('/p/fa.c')).toBe(true);
    expect(shellGlob('/p', 'f[!0-9].c').matches('/p/f1.c')).toBe(false);
  });
});

describe('WatchSet', () => {
  it('holds exactly the inputs of the selected targets, never outputs or .orchestrator/', async () => {
    const rig = await Rig.create();
    try {
      rig.write({
        'orchestrator.yaml': [
          'version: 1',
          'targets:',
          '  base:',
          '    from: ./rootfs',
          '    recipe: recipes/base.def',
          '    format: sandbox',
          '  app:',
          '    from: target:base',
          '    recipe: recipes/app.def',
          '    inputs: [data/model.bin, "assets/*.png", target:base]',
          '    format: squashfs',
          '  other:',
          '    recipe: recipes/other.def',
          '    format: squashfs',
          '',
        ].join('\n'),
        'rootfs/bin/sh': '',
        'recipes/base.def': '%files\n    ../build/base/x /x\n    base.txt /base.txt\n%post\n    true\n',
        'recipes/app.def': 'Bootstrap: localimage\nFrom: ../img.simg\n%files\n    conf/*.conf /etc/\n',
        'recipes/other.def': 'Bootstrap: localimage\nFrom: ../other.simg\n',
      });
      const { project } = await loadProject({ cwd: rig.dir });
      const recipes = loadRecipes(project!, { cwd: rig.dir });
      const set = WatchSet.of({ project: project!, recipes: recipes.byTarget, targets: ['base', 'app'], storeDir: rig.path('cache') });
      expect(set.paths()).toEqual(
        ['assets', 'data/model.bin', 'orchestrator.yaml', 'recipes/app.def', 'recipes/base.def', 'recipes/base.txt', 'recipes/conf', 'rootfs'].map((p) => rig.path(p)),
      );
      const impact = set.impact([rig.path('assets/a.png'), rig.path('assets/a.txt'), rig.path('recipes/conf/x.conf'), rig.path('build/base/x'), rig.path('notes')]);
      expect([...impact.targets]).toEqual(['app']);
      expect(impact.relevant).toEqual([rig.path('assets/a.png'), rig.path('recipes/conf/x.conf')]);
      expect(impact.manifest).toBe(false);
      expect(set.impact([rig.path('rootfs/bin/sh')]).targets).toEqual(new Set(['base']));
      expect(set.impact([rig.path('orchestrator.yaml')]).manifest).toBe(true);
      expect(set.isExcluded(rig.path('.orchestrator/state.json'))).toBe(true);
      expect(set.isExcluded(rig.path('build/app.simg'))).toBe(true);
      expect(set.isExcluded(rig.path('cache/tmp/x'))).toBe(true);
    } finally {
      rig.cleanup();
    }
  });

  it('watches an args file as a part of the manifest', async () => {
    const rig = await Rig.create();
    try {
      rig.write({
        'orchestrator.yaml': 'version: 1\ntemplates:\n  base:\n    args_file: versions.env\ntargets:\n  app:\n    inherits: [base]\n    recipe: app.def\n    format: sandbox\n',
        'versions.env': 'A=1\n',
        'app.def': 'Bootstrap: docker\nFrom: busybox\n',
      });
      const { project } = await loadProject({ cwd: rig.dir });
      const set = WatchSet.of({ project: project!, recipes: loadRecipes(project!, { cwd: rig.dir }).byTarget, targets: ['app'] });
      expect(set.paths()).toContain(rig.path('versions.env'));
      expect(set.impact([rig.path('versions.env')]).manifest).toBe(true);
    } finally {
      rig.cleanup();
    }
  });
});

import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadProject } from '../../src/manifest/load-project.js';
import { formatDiagnostics } from '../../src/report/diagnostics.js';
import { Rig } from '../helpers/rig.js';

// Where outputs may be (issue 20, items 1 and 2): never a system folder or the home, outside the
// project only with `outputs: {outside: [...]}`, and never over the project's own sources.
const RECIPE = 'Bootstrap: scratch\n\n%post\n  true\n';

let rig: Rig;
let other: string;
beforeEach(async () => {
  rig = await Rig.create();
  other = mkdtempSync(join(tmpdir(), 'orchestrator-outside-'));
});
afterEach(() => {
  rig.cleanup();
  rmSync(other, { recursive: true, force: true });
});

const manifest = (...lines: string[]): string => ['version: 1', ...lines, ''].join('\n');
const errorsOf = async (homedir?: string) => {
  const r = await loadProject({ cwd: rig.dir, ...(homedir ? { homedir } : {}) });
  return formatDiagnostics(r.diagnostics);
};
async function validate(): Promise<{ stderr: string; code: number }> {
  const before = rig.files();
  const r = await rig.cli(['validate']);
  expect(rig.files()).toEqual(before);
  expect(r.stdout).toBe('');
  return r;
}

describe('outputs outside the project', () => {
  it('is an error without an opt-in, at the output, with a hint naming outputs.outside', async () => {
    rig.write({ 'orchestrator.yaml': manifest('targets:', '  a:', '    from: docker://alpine', `    output: ${other}/a.simg`) });
    const r = await validate();
    expect(r.stderr).toBe(
      [
        `orchestrator.yaml:5:13: error: output '${other}/a.simg' of target 'a' is outside the project folder`,
        `      output: ${other}/a.simg`,
        `              ^${'~'.repeat(`${other}/a.simg`.length - 1)}`,
        `  hint: outputs outside the project need an opt-in: list a folder that holds it at the top level, 'outputs: {outside: [${other}]}'`,
        '1 error',
        '',
      ].join('\n'),
    );
    expect(r.code).toBe(2);
  });

  it('is accepted below a folder of outputs.outside, ~/ being the home', async () => {
    rig.write({
      'orchestrator.yaml': manifest(
        'outputs:',
        `  outside: [${other}/a, ~/images]`,
        'targets:',
        '  a: {from: docker://alpine, output: ' + other + '/a/x/}',
        '  b: {from: docker://alpine, output: ' + other + '/a.simg}',
        '  c: {from: docker://alpine, output: ' + other + '/home/images/c.simg}',
      ),
    });
    const r = await loadProject({ cwd: rig.dir, homedir: join(other, 'home') });
    expect(formatDiagnostics(r.diagnostics)).toContain(`error: output '${other}/a.simg' of target 'b' is outside the project folder`);
    expect(r.diagnostics).toHaveLength(1);
    rig.write({
      'orchestrator.yaml': manifest(
        'outputs:',
        `  outside: [${other}/a, ~/images]`,
        'targets:',
        '  a: {from: docker://alpine, output: ' + other + '/a/x/}',
        '  c: {from: docker://alpine, output: ' + other + '/home/images/c.simg}',
      ),
    });
    const ok = await loadProject({ cwd: rig.dir, homedir: join(other, 'home') });
    expect(ok.diagnostics).toEqual([]);
    expect(ok.project!.outputsOutside).toEqual([`${other}/a`, `${other}/home/images`]);
  });

  it('an outputs.outside entry must be absolute or start with ~/', async () => {
    rig.write({ 'orchestrator.yaml': manifest('outputs:', '  outside: [images]', 'targets:', '  a: {from: docker://alpine, format: sandbox}') });
    expect(await errorsOf()).toBe(
      [
        "orchestrator.yaml:3:13: error: invalid entry 1 of 'outputs.outside' 'images'",
        '    outside: [images]',
        '              ^~~~~~',
        "  hint: write an absolute folder ('/data/images') or one below your home ('~/images')",
      ].join('\n'),
    );
  });

  for (const [output, folder] of [
    ['/root/', '/root'],
    ['/usr/', '/usr'],
    ['/srv/', '/srv'],
    ['/home', '/home'],
    ['/lib64/', '/lib64'],
  ] as const) {
    it(`${output}: a system folder is refused, even when listed`, async () => {
      rig.write({
        'orchestrator.yaml': manifest('outputs:', '  outside: [/]', 'targets:', '  a:', '    from: docker://alpine', '    format: sandbox', `    output: ${output}`),
      });
      expect(await errorsOf()).toBe(
        [
          `orchestrator.yaml:8:13: error: output '${output}' of target 'a' is the system folder ${folder}`,
          `      output: ${output}`,
          `              ^${'~'.repeat(output.length - 1)}`,
          "  hint: a build replaces its whole output; write into a folder of the project such as 'build/'",
        ].join('\n'),
      );
    });
  }

  it('the home folder itself is refused; a folder in it, listed, is fine', async () => {
    const home = join(other, 'me');
    rig.write({ 'orchestrator.yaml': manifest('outputs:', '  outside: [~/]', 'targets:', '  a: {from: docker://alpine, output: ~/x/}', `  b: {from: docker://alpine, output: ${home}/}`) });
    const r = await loadProject({ cwd: rig.dir, homedir: home });
    expect(r.diagnostics.map((d) => d.message)).toEqual([
      // '~/x/' in an output is not expanded: it is a folder named '~' in the project.
      `output '${home}/' of target 'b' is your home folder ${home}`,
    ]);
  });

  it('a folder inside /tmp with an opt-in is fine', async () => {
    rig.write({ 'orchestrator.yaml': manifest('outputs:', `  outside: [${other}]`, 'targets:', `  a: {from: docker://alpine, output: ${other}/x/}`) });
    expect(await errorsOf()).toBe('');
  });
});

describe('outputs over the project\'s own sources', () => {
  const overlapError = (line: number, col: number, output: string, verb: string, what: string): string =>
    `orchestrator.yaml:${line}:${col}: error: output '${output}' of target 'app' ${verb} ${what}`;

  it('the recipe, the manifest, the recipes folder and .orchestrator/ are refused', async () => {
    for (const [output, format, verb, what] of [
      ['recipes/app.def', 'squashfs', 'is', "the recipe 'recipes/app.def' of target 'app'"],
      ['orchestrator.yaml', 'squashfs', 'is', "the manifest 'orchestrator.yaml'"],
      ['recipes/', 'sandbox', 'would hold', "the recipe 'recipes/app.def' of target 'app'"],
      ['.orchestrator/', 'sandbox', 'is', "the project's state folder '.orchestrator/'"],
      ['.orchestrator/x.simg', 'squashfs', 'is inside', "the project's state folder '.orchestrator/'"],
    ] as const) {
      rig.write({
        'orchestrator.yaml': manifest('targets:', '  app:', '    recipe: recipes/app.def', `    format: ${format}`, `    output: ${output}`),
        'recipes/app.def': RECIPE,
      });
      const r = await validate();
      expect(r.stderr).toContain(`${overlapError(6, 13, output, verb, what)}\n`);
      expect(r.stderr).toContain("  hint: a build replaces its whole output; choose an output apart from the project's sources, such as 'build/NAME/'\n");
      expect(r.code).toBe(2);
    }
  });

  it('names where the other thing is declared', async () => {
    rig.write({
      'orchestrator.yaml': manifest('targets:', '  app:', '    recipe: recipes/app.def', '    format: squashfs', '    output: recipes/app.def'),
      'recipes/app.def': RECIPE,
    });
    const r = await loadProject({ cwd: rig.dir });
    expect(r.diagnostics.map((d) => [d.reason, d.location?.line, d.related?.map((x) => [x.message, x.location?.line, x.location?.column])])).toEqual([
      ['manifest-output-overwrites-source', 6, [["recipe 'recipes/app.def' of target 'app' is declared here", 4, 13]]],
    ]);
  });

  it("another target's local source, its parent and its child are refused", async () => {
    mkdirSync(rig.path('img/rootfs'), { recursive: true });
    for (const [output, verb] of [
      ['img/rootfs/', 'is'],
      ['img/', 'would hold'],
      ['img/rootfs/sub/', 'is inside'],
    ] as const) {
      rig.write({ 'orchestrator.yaml': manifest('targets:', '  base:', '    from: ./img/rootfs', '    format: sandbox', '  app:', '    from: target:base', `    output: ${output}`) });
      const r = await validate();
      expect(r.stderr).toContain(`${overlapError(8, 13, output, verb, "the source './img/rootfs' of target 'base'")}\n`);
      expect(r.code).toBe(2);
    }
  });

  it('oci: layouts and archives are sources too', async () => {
    rig.write({ 'orchestrator.yaml': manifest('targets:', '  app:', '    from: oci:layout:v1', '    output: layout/x/') });
    expect(await errorsOf()).toContain("error: output 'layout/x/' of target 'app' is inside the source 'oci:layout:v1' of target 'app'");
    rig.write({ 'orchestrator.yaml': manifest('targets:', '  app:', '    from: docker-archive:img.tar', '    format: squashfs', '    output: img.tar') });
    expect(await errorsOf()).toContain("error: output 'img.tar' of target 'app' is the source 'docker-archive:img.tar' of target 'app'");
  });

  it('an input, and a glob by its fixed folder, are refused; an output inside an input folder is not (outputs are never read as inputs)', async () => {
    rig.write({ 'orchestrator.yaml': manifest('targets:', '  app:', '    from: docker://alpine', '    inputs: [data/*.csv, model.bin]', '    output: data/out.simg') });
    expect(await errorsOf()).toBe('');
    rig.write({ 'orchestrator.yaml': manifest('targets:', '  app:', '    from: docker://alpine', '    inputs: [data/sub/*.csv, model.bin]', '    output: data/') });
    expect(await errorsOf()).toContain("orchestrator.yaml:6:13: error: output 'data/' of target 'app' would hold input 'data/sub/*.csv' of target 'app'");
    rig.write({ 'orchestrator.yaml': manifest('targets:', '  app:', '    from: docker://alpine', '    inputs: [data/*.csv, model.bin]', '    format: squashfs', '    output: model.bin') });
    expect(await errorsOf()).toContain("error: output 'model.bin' of target 'app' is input 'model.bin' of target 'app'");
  });

  it("a recipe's %files source and localimage source are refused (validate, plan, up: exit 2, nothing written)", async () => {
    rig.write({
      'orchestrator.yaml': manifest('targets:', '  app:', '    recipe: recipes/app.def', '    output: recipes/data/'),
      'recipes/app.def': 'Bootstrap: localimage\nFrom: base.sif\n\n%files\n  data/a.txt /a.txt\n',
      'recipes/data/a.txt': 'keep me\n',
      'recipes/base.sif': 'image\n',
    });
    const before = rig.files();
    for (const cmd of [['validate'], ['plan'], ['up']]) {
      const r = await rig.cli(cmd);
      expect(r.stderr).toBe(
        [
          "orchestrator.yaml:5:13: error: output 'recipes/data/' of target 'app' would hold the %files source 'data/a.txt' of recipe recipes/app.def",
          '      output: recipes/data/',
          '              ^~~~~~~~~~~~~',
          "recipes/app.def:5:3: note: %files source 'data/a.txt' of recipe recipes/app.def is declared here",
          '    data/a.txt /a.txt',
          '    ^~~~~~~~~~~~~~~~~',
          "  hint: a build replaces its whole output; choose an output apart from the project's sources, such as 'build/NAME/'",
          '1 error',
          '',
        ].join('\n'),
      );
      expect(r.code).toBe(2);
    }
    expect(rig.files()).toEqual(before);
    rig.write({ 'orchestrator.yaml': manifest('targets:', '  app:', '    recipe: recipes/app.def', '    format: sif', '    output: recipes/base.sif') });
    const r = await rig.cli(['validate']);
    expect(r.stderr).toContain("error: output 'recipes/base.sif' of target 'app' is the source 'base.sif' of recipe recipes/app.def\n");
  });

  it("a file of another target's output may be read by a target built after it, not by others", async () => {
    const files = {
      'a.def': RECIPE,
      'b.def': 'Bootstrap: scratch\n\n%files\n  build/a/x.txt /x.txt\n',
    };
    rig.write({ ...files, 'orchestrator.yaml': manifest('targets:', '  a: {recipe: a.def, format: sandbox}', '  b: {from: target:a, recipe: b.def, format: sandbox}') });
    const ok = await rig.cli(['validate']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    rig.write({ 'orchestrator.yaml': manifest('targets:', '  a: {recipe: a.def, format: sandbox}', '  b: {from: docker://alpine, recipe: b.def, format: sandbox}') });
    const r = await rig.cli(['validate']);
    expect(r.stderr).toContain("orchestrator.yaml:3:3: error: output 'build/a/' of target 'a' would hold the %files source 'build/a/x.txt' of recipe b.def\n");
    expect(r.code).toBe(2);
  });

  it('an output reached through a symlinked folder is compared by its real path, duplicates too', async () => {
    rig.write({ 'orchestrator.yaml': manifest('targets:', '  app:', '    recipe: recipes/app.def', '    output: link/'), 'recipes/app.def': RECIPE });
    symlinkSync('recipes', rig.path('link'));
    expect(await errorsOf()).toContain("error: output 'link/' of target 'app' would hold the recipe 'recipes/app.def' of target 'app'");

    mkdirSync(rig.path('out'));
    symlinkSync('out', rig.path('out2'));
    rig.write({ 'orchestrator.yaml': manifest('targets:', '  a: {from: docker://alpine, output: out/x.simg}', '  b: {from: docker://alpine, output: out2/x.simg}') });
    expect(await errorsOf()).toContain("error: targets 'a' and 'b' both write 'out2/x.simg' (the same path as 'out/x.simg')");

    symlinkSync(other, rig.path('away'));
    rig.write({ 'orchestrator.yaml': manifest('targets:', '  a: {from: docker://alpine, output: away/x.simg}') });
    expect(await errorsOf()).toContain(`error: output 'away/x.simg' of target 'a' is outside the project folder (really ${other}/x.simg)`);
  });
});

describe('orchestrator build OUT SOURCE', () => {
  it('refuses an OUT that is, holds or lies inside SOURCE, and writes nothing', async () => {
    rig.write({ 'sb/.singularity.d/runscript': '#!/bin/sh\n', 'sb/etc/hostname': 'x\n', 'app.def': RECIPE });
    const before = rig.files();
    for (const [argv, message] of [
      [['--sandbox', '--force', 'sb/inner', 'sb'], 'sb/inner is inside the source sb'],
      [['--sandbox', '--force', 'sb', 'sb'], 'sb is the source sb'],
      [['--sandbox', '--force', '.', 'sb'], '. would hold the source sb'],
      [['--force', 'app.def', 'app.def'], 'app.def is the source app.def'],
      [['--sandbox', '--force', 'sb/etc/', 'oci:sb/etc:v1'], 'sb/etc/ is the source oci:sb/etc:v1'],
    ] as const) {
      const r = await rig.cli(['build', ...argv]);
      expect(r.stderr).toBe(`error: ${message}\n  hint: a build replaces its whole output; write it somewhere apart from SOURCE\n`);
      expect(r.code).toBe(2);
    }
    expect(rig.files()).toEqual(before);
    expect(readdirSync(rig.path('sb')).sort()).toEqual(['.singularity.d', 'etc']);
  });
});

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCliInProcess } from '../helpers/cli.js';

// templates, inherits, matrix, ${VAR}, args_file and --set (docs/ARCHITECTURE.md, Manifest and
// recipes): what they expand to (through `config --json`, the expanded manifest) and the exact
// diagnostic of each bad input, at the text that caused it.

let dir: string;
const RECIPE = 'Bootstrap: docker\nFrom: busybox\n\n%post\n    echo "{{ py }} {{ cuda }}" > /args\n';
const env = { NO_COLOR: '1', PATH: process.env['PATH'] ?? '' };

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'orch-matrix-'));
  writeFileSync(join(dir, 'app.def'), RECIPE);
  writeFileSync(join(dir, 'plain.def'), 'Bootstrap: docker\nFrom: busybox\n');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const run = (argv: string[], extraEnv: Record<string, string> = {}) => runCliInProcess(argv, { cwd: dir, env: { ...env, ...extraEnv } });

async function config(yaml: string, argv: string[] = [], extraEnv: Record<string, string> = {}): Promise<{ targets: Record<string, Record<string, unknown>>; groups?: Record<string, string[]> }> {
  writeFileSync(join(dir, 'orchestrator.yaml'), yaml);
  const r = await run(['config', '--json', ...argv], extraEnv);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as { targets: Record<string, Record<string, unknown>> };
}

async function validate(yaml: string, argv: string[] = [], extraEnv: Record<string, string> = {}): Promise<string> {
  writeFileSync(join(dir, 'orchestrator.yaml'), yaml);
  const r = await run(['validate', ...argv], extraEnv);
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  return r.stderr;
}

const MATRIX = `version: 1
targets:
  app:
    recipe: app.def
    matrix:
      py: ["3.10", "3.11", "3.12"]
      cuda: [none, "12.4"]
      exclude:
        - py: "3.10"
          cuda: "12.4"
    name: app-py{{ py }}-{{ cuda }}
    output: build/app-{{ py }}-{{ cuda }}.simg
groups:
  release: [app]
`;

describe('matrix', () => {
  it('makes one target per combination less the excluded, named by the template, the values as args and in output', async () => {
    const m = await config(MATRIX);
    expect(Object.keys(m.targets)).toEqual(['app-py3.10-none', 'app-py3.11-none', 'app-py3.11-12.4', 'app-py3.12-none', 'app-py3.12-12.4']);
    expect(m.targets['app-py3.11-12.4']).toEqual({ recipe: 'app.def', format: 'squashfs', output: 'build/app-3.11-12.4.simg', args: { py: '3.11', cuda: '12.4' } });
    // The base name is a group of all variants; a group that names it means them all.
    expect(m.groups).toEqual({ release: ['app'], app: Object.keys(m.targets) });
    const plan = await run(['plan', 'release']);
    expect(plan.stdout).toContain('5 targets in build order, 5 to build');
    expect(plan.stdout).toContain('     variant: py=3.11, cuda=12.4 (matrix of \'app\')');
  });

  it('adds include entries as GitHub Actions does: to the combinations they fit, else as their own', async () => {
    const m = await config(`version: 1
targets:
  app:
    recipe: app.def
    format: sandbox
    matrix:
      py: ["3.11", "3.12"]
      include:
        - py: "3.12"
          cuda: "12.4"
        - py: "3.9"
          cuda: none
`);
    expect(Object.fromEntries(Object.entries(m.targets).map(([k, v]) => [k, v['args']]))).toEqual({
      'app-3.11': { py: '3.11' },
      'app-3.12-12.4': { py: '3.12', cuda: '12.4' },
      'app-3.9-none': { py: '3.9', cuda: 'none' },
    });
  });

  it('reports names that collide, with both places', async () => {
    expect(
      await validate(`version: 1
targets:
  app-1:
    recipe: plain.def
    format: sandbox
  app:
    recipe: app.def
    format: sandbox
    matrix:
      py: ["1", "2"]
      cuda: [a, b]
    name: app-{{ py }}
`),
    ).toBe(`orchestrator.yaml:12:11: error: target name 'app-1' is made twice: by target 'app-1' and by target 'app' with py=1, cuda=a
      name: app-{{ py }}
            ^~~~~~~~~~~~
orchestrator.yaml:3:3: note: 'app-1' is made here by target 'app-1'
    app-1:
    ^~~~~
  hint: give each variant its own name: use every matrix key in 'name', or rename a target
orchestrator.yaml:12:11: error: target name 'app-1' is made twice: by target 'app-1' and by target 'app' with py=1, cuda=b
      name: app-{{ py }}
            ^~~~~~~~~~~~
orchestrator.yaml:3:3: note: 'app-1' is made here by target 'app-1'
    app-1:
    ^~~~~
  hint: give each variant its own name: use every matrix key in 'name', or rename a target
orchestrator.yaml:12:11: error: target name 'app-2' is made twice: by target 'app' with py=2, cuda=a and by target 'app' with py=2, cuda=b
      name: app-{{ py }}
            ^~~~~~~~~~~~
orchestrator.yaml:12:11: note: 'app-2' is made here by target 'app' with py=2, cuda=a
      name: app-{{ py }}
            ^~~~~~~~~~~~
  hint: give each variant its own name: use every matrix key in 'name', or rename a target
3 errors
`);
  });

  it('reports outputs that collide, naming both variants', async () => {
    expect(
      await validate(`version: 1
targets:
  app:
    recipe: app.def
    matrix:
      py: ["1", "2"]
    output: build/app.simg
`),
    ).toBe(`orchestrator.yaml:7:13: error: targets 'app-1' and 'app-2' both write 'build/app.simg'
      output: build/app.simg
              ^~~~~~~~~~~~~~
orchestrator.yaml:7:13: note: target 'app-1' writes it here
      output: build/app.simg
              ^~~~~~~~~~~~~~
  hint: give target 'app-2' another 'output'
1 error
`);
  });

  it('reports a bad value of one variant at the matrix value, naming the variant', async () => {
    expect(
      await validate(`version: 1
targets:
  app:
    recipe: app.def
    format: ext3
    matrix:
      v: [a, "b/c"]
    output: build/{{ v }}.img
    size: 1MiB
  sized:
    recipe: app.def
    format: squashfs
    matrix:
      v: ["1"]
    name: "{{ v }}x"
    output: build/{{ v }}.img
`),
    ).toBe(`orchestrator.yaml:3:3: error: invalid target name 'app-b/c' made by target 'app' with v=b/c
    app:
    ^~~
  hint: names use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit; write a 'name:' that makes such names
orchestrator.yaml:16:13: error: output 'build/1.img' of target '1x' names a ext3 image, but its format is squashfs
      output: build/{{ v }}.img
              ^~~~~~~~~~~~~~~~~
orchestrator.yaml:12:13: note: format squashfs is set here
      format: squashfs
              ^~~~~~~~
  hint: write 'output: build/1.simg', or 'format: ext3'
2 errors
`);
  });

  it("fills {{ KEY }} in 'from' and checks the source of each variant", async () => {
    const yaml = (bad: string) => `version: 1
targets:
  app:
    from: docker://busybox:{{ tag }}
    recipe: plain.def
    format: sandbox
    matrix:
      n: ["1", "2"]
      include:
        - n: "1"
          tag: "1.36"
        - n: "2"
          tag: "${bad}"
    name: app-{{ n }}
`;
    expect(Object.fromEntries(Object.entries((await config(yaml('1.37'))).targets).map(([k, v]) => [k, v['from']]))).toEqual({
      'app-1': 'docker://busybox:1.36',
      'app-2': 'docker://busybox:1.37',
    });
    expect(await validate(yaml('bad tag'))).toBe(`orchestrator.yaml:4:11: error: invalid source 'docker://busybox:bad tag' in 'from' of target 'app-2': it contains whitespace
      from: docker://busybox:{{ tag }}
            ^~~~~~~~~~~~~~~~~~~~~~~~~~
1 error
`);
  });

  it('reports a matrix whose every combination is excluded', async () => {
    expect(
      await validate(`version: 1
targets:
  app:
    recipe: app.def
    format: sandbox
    matrix:
      py: ["1"]
      exclude:
        - py: "1"
`),
    ).toBe(`orchestrator.yaml:6:5: error: the matrix of target 'app' makes no targets
      matrix:
      ^~~~~~
  hint: give each axis at least one value, or exclude fewer combinations; 'include' entries add combinations
1 error
`);
  });

  it("reports a name template's unknown key once, with did-you-mean", async () => {
    expect(
      await validate(`version: 1
targets:
  app:
    recipe: app.def
    format: sandbox
    matrix:
      py: ["1", "2"]
    name: app-{{ pyy }}
`),
    ).toBe(`orchestrator.yaml:8:11: error: '{{ pyy }}' in the name of target 'app' is not a key of its matrix (variant py=1)
      name: app-{{ pyy }}
            ^~~~~~~~~~~~~
  hint: did you mean 'py'?
1 error
`);
  });
});

const FAMILY = `version: 1
templates:
  base:
    recipe: app.def
    args:
      py: "3.12"
      cuda: none
      level: base
    inputs: [data/a.txt]
  gpu:
    args:
      cuda: "12.4"
      level: gpu
    inputs: [data/b.txt, data/a.txt]
  prod:
    inherits: [base]
    format: squashfs
    args:
      level: prod
targets:
  train:
    inherits: [prod, gpu]
    output: dist/train.simg
    args:
      py: "3.11"
  dev:
    inherits: [base]
    format: sandbox
`;

describe('inherits', () => {
  it('resolves three levels and two parents in order: a later parent over an earlier one, own keys over all; args merge, inputs join', async () => {
    const m = await config(FAMILY);
    expect(m.targets).toEqual({
      train: {
        recipe: 'app.def',
        format: 'squashfs',
        output: 'dist/train.simg',
        args: { py: '3.11', cuda: '12.4', level: 'gpu' },
        inputs: ['data/a.txt', 'data/b.txt'],
      },
      dev: { recipe: 'app.def', format: 'sandbox', output: 'build/dev/', args: { py: '3.12', cuda: 'none', level: 'base' }, inputs: ['data/a.txt'] },
    });
    const plan = JSON.parse((await run(['plan', '--json', 'train'])).stdout) as { targets: Array<{ origin: unknown; args: unknown }> };
    expect(plan.targets[0]!.origin).toEqual({ base: 'train', inherits: ['prod', 'base', 'gpu'] });
  });

  it('reports a bad value at the template line where it is written, once', async () => {
    expect(await validate(FAMILY.replace('format: squashfs', 'format: squahsfs'))).toBe(`orchestrator.yaml:17:13: error: invalid format 'squahsfs' for template 'prod': expected sandbox, ext3, squashfs or sif
      format: squahsfs
              ^~~~~~~~
  hint: did you mean 'squashfs'?
1 error
`);
  });

  it('reports an inherited value that does not fit the target at the template line, naming the target', async () => {
    expect(await validate(FAMILY.replace('    output: dist/train.simg\n', '    output: dist/train/\n'))).toBe(`orchestrator.yaml:23:13: error: output 'dist/train/' of target 'train' names a sandbox folder, but its format is squashfs
      output: dist/train/
              ^~~~~~~~~~~
orchestrator.yaml:17:13: note: format squashfs is set here
      format: squashfs
              ^~~~~~~~
  hint: write 'output: dist/train.simg', or 'format: sandbox'
1 error
`);
  });

  it('reports a cycle with each edge', async () => {
    expect(
      await validate(`version: 1
templates:
  a:
    inherits: [b]
  b:
    inherits: [a]
targets:
  app:
    inherits: [a]
    recipe: plain.def
    format: sandbox
`),
    ).toBe(`orchestrator.yaml:3:3: error: inherits cycle: a → b → a
    a:
    ^
orchestrator.yaml:4:16: note: 'a' inherits 'b'
      inherits: [b]
                 ^
orchestrator.yaml:6:16: note: 'b' inherits 'a'
      inherits: [a]
                 ^
  hint: a target or template cannot inherit from itself; remove one of these 'inherits' entries
1 error
`);
  });

  it('reports an unknown parent with did-you-mean', async () => {
    expect(await validate(FAMILY.replace('inherits: [prod, gpu]', 'inherits: [prod, gpuu]'))).toBe(`orchestrator.yaml:22:22: error: unknown template or target 'gpuu' in 'inherits' of target 'train'
      inherits: [prod, gpuu]
                       ^~~~
  hint: did you mean 'gpu'?
1 error
`);
  });

  it('refuses a template with the name of a target, and a matrix on a template', async () => {
    expect(
      await validate(`version: 1
templates:
  app:
    format: sandbox
    matrix:
      v: ["1"]
targets:
  app:
    recipe: plain.def
    format: sandbox
`),
    ).toBe(`orchestrator.yaml:3:3: error: template 'app' has the name of a target
    app:
    ^~~
orchestrator.yaml:8:3: note: target 'app' is declared here
    app:
    ^~~
  hint: targets and templates share one namespace for 'inherits'; rename the template
orchestrator.yaml:5:5: error: 'matrix' applies only to targets, not to template 'app'
      matrix:
      ^~~~~~
  hint: move 'matrix' to the targets that inherit 'app'
2 errors
`);
  });
});

describe('variables', () => {
  const VARS = `version: 1
targets:
  app:
    recipe: app.def
    format: sandbox
    output: build/\${FLAVOUR:-plain}/app/
    args_file: versions.env
    args:
      cuda: \${CUDA}
`;

  it('takes ${VAR} from the environment, ${VAR:-default} when unset, args from args_file under the own args, --set over all', async () => {
    writeFileSync(join(dir, 'versions.env'), '# versions\nexport py="3.12"\ncuda=none\n');
    expect((await config(VARS, [], { CUDA: '12.4' })).targets['app']).toEqual({ recipe: 'app.def', format: 'sandbox', output: 'build/plain/app/', args: { py: '3.12', cuda: '12.4' } });
    expect((await config(VARS, ['--set', 'app.args.py=3.9', '--set', 'app.output=out/'], { CUDA: '12.4', FLAVOUR: 'dev' })).targets['app']).toEqual({
      recipe: 'app.def',
      format: 'sandbox',
      output: 'out/',
      args: { py: '3.9', cuda: '12.4' },
    });
    const plan = JSON.parse((await run(['plan', '--json', '--set', 'app.args.py=3.9'], { CUDA: '12.4' })).stdout) as { targets: Array<{ origin: unknown }> };
    expect(plan.targets[0]!.origin).toEqual({ base: 'app', argsFiles: ['versions.env'], env: ['FLAVOUR', 'CUDA'], set: ['args.py'] });
  });

  it('reports an unset variable at its place in the value', async () => {
    writeFileSync(join(dir, 'versions.env'), 'py=3.12\n');
    expect(await validate(VARS)).toBe(`orchestrator.yaml:9:13: error: environment variable 'CUDA' is not set (arg 'cuda' of target 'app')
        cuda: \${CUDA}
              ^~~~~~~
  hint: set it ('export CUDA=...'), or give a default: \${CUDA:-VALUE}
1 error
`);
  });

  it('reports a bad line of the args file at that line, and a missing args file at args_file', async () => {
    writeFileSync(join(dir, 'versions.env'), 'py=3.12\npy 3.13\n');
    expect(await validate(VARS, [], { CUDA: '1' })).toBe(`versions.env:2:1: error: line 2 of args file 'versions.env' is not NAME=VALUE
  py 3.13
  ^~~~~~~
  hint: write one 'NAME=VALUE' per line (NAME: letters, digits and '_'); '#' starts a comment
1 error
`);
    rmSync(join(dir, 'versions.env'));
    expect(await validate(VARS, [], { CUDA: '1' })).toBe(`orchestrator.yaml:7:16: error: args file 'versions.env' not found
      args_file: versions.env
                 ^~~~~~~~~~~~
  hint: args_file paths are relative to the folder of orchestrator.yaml
1 error
`);
  });

  it('reports a bad --set on the command line, and a bad value it sets there', async () => {
    writeFileSync(join(dir, 'versions.env'), 'py=3.12\n');
    expect(await validate(VARS, ['--set', 'ap.format=ext3', '--set', 'app.fromat=x', '--set', 'app.format=squahsfs'], { CUDA: '1' }))
      .toBe(`command line:1:7: error: unknown target 'ap' in --set 'ap.format=ext3'
  --set ap.format=ext3
        ^~
  hint: did you mean 'app'?
command line:1:11: error: --set cannot set 'fromat' of a target
  --set app.fromat=x
            ^~~~~~
  hint: did you mean 'format'?
command line:1:18: error: invalid format 'squahsfs' for target 'app': expected sandbox, ext3, squashfs or sif
  --set app.format=squahsfs
                   ^~~~~~~~
  hint: did you mean 'squashfs'?
3 errors
`);
  });
});

describe('config', () => {
  it('round-trips: its output, validated as a manifest, gives the same targets and keys', async () => {
    writeFileSync(join(dir, 'orchestrator.yaml'), MATRIX.replace('groups:', `  tool:\n    inherits: [app-base]\n    args:\n      py: "3.9"\ntemplates:\n  app-base:\n    recipe: app.def\n    format: sandbox\n    args:\n      cuda: none\ngroups:`));
    const first = await run(['config', '--json']);
    expect(first.code).toBe(0);
    writeFileSync(join(dir, 'expanded.yaml'), first.stdout);
    expect(await run(['validate', '-f', 'expanded.yaml'])).toEqual({ code: 0, stdout: 'ok: 6 targets\n', stderr: '' });
    const planOf = async (file: string) => {
      const p = JSON.parse((await run(['plan', '--json', '-f', file])).stdout) as { targets: Array<Record<string, unknown>> };
      return p.targets.map(({ origin: _origin, ...t }) => t);
    };
    expect(await planOf('expanded.yaml')).toEqual(await planOf('orchestrator.yaml'));
    expect((await run(['config', '--json', '-f', 'expanded.yaml'])).stdout).toBe(first.stdout);
    // The YAML form says the same.
    const yaml = await run(['config']);
    writeFileSync(join(dir, 'expanded2.yaml'), yaml.stdout);
    expect((await run(['config', '--json', '-f', 'expanded2.yaml'])).stdout).toBe(first.stdout);
    expect(readFileSync(join(dir, 'expanded2.yaml'), 'utf8')).toContain('  app-py3.10-none:\n');
  });
});

describe('recipes of variants', () => {
  it('names the variant where a value is missing for the recipe', async () => {
    writeFileSync(join(dir, 'app.def'), 'Bootstrap: docker\nFrom: busybox\n%post\n    echo {{ py }} {{ gpu }}\n');
    expect(
      await validate(`version: 1
targets:
  app:
    recipe: app.def
    format: sandbox
    matrix:
      py: ["1", "2"]
      include:
        - py: "2"
          gpu: "yes"
`),
    ).toBe(`app.def:4:19: error: build argument 'gpu' is not defined
      echo {{ py }} {{ gpu }}
                    ^~~~~~~~~
orchestrator.yaml:3:3: note: in target 'app-1' (py=1), a variant of 'app'
    app:
    ^~~
  hint: give it a default in %arguments (gpu=...) or a value in orchestrator.yaml 'args'
1 error
`);
  });
});

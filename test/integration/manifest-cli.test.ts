import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli, runCliInProcess } from '../helpers/cli.js';
import { Rig } from '../helpers/rig.js';

const EXAMPLES = join(REPO_ROOT, 'examples');
const examples = readdirSync(EXAMPLES, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

describe('examples', () => {
  it('has the quick start and the three Singularity flows', () => {
    expect(examples).toEqual(expect.arrayContaining(['quickstart', 'registry-to-production', 'shared-base', 'ubuntu', 'writable-ext3']));
  });

  for (const name of examples) {
    it(`validate -C examples/${name} exits 0 (built CLI)`, async () => {
      const r = await runCli(['validate', '-C', `examples/${name}`], { cwd: REPO_ROOT });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^ok: \d+ targets?\n$/);
      expect(r.code).toBe(0);
    });

    it(`graph --format dot of examples/${name} is accepted by dot -Tsvg`, async () => {
      const r = await runCli(['graph', '--format', 'dot', '-C', `examples/${name}`], { cwd: REPO_ROOT });
      expect(r.code).toBe(0);
      const dot = spawnSync('dot', ['-Tsvg'], { input: r.stdout, encoding: 'utf8' });
      expect(dot.stderr).toBe('');
      expect(dot.status).toBe(0);
      expect(dot.stdout).toContain('<svg');
    });
  }
});

describe('plan and graph', () => {
  const cwd = join(EXAMPLES, 'shared-base');

  it('plan lists the default group in build order with what each target needs', async () => {
    const r = await runCliInProcess(['plan'], { cwd });
    expect(r.stdout).toBe(
      [
        '1. base: stale',
        '     why:     never built',
        "     source:  (the recipe's Bootstrap header)",
        '     recipe:  recipes/base.def',
        '     format:  sandbox',
        '     output:  build/base/',
        '2. api: stale',
        '     why:     never built',
        '     source:  target:base',
        '     recipe:  recipes/api.def',
        '     format:  squashfs',
        '     output:  build/api.simg',
        '     needs:   base',
        '3. worker: stale',
        '     why:     never built',
        '     source:  target:base',
        '     recipe:  recipes/worker.def',
        '     format:  squashfs',
        '     output:  dist/worker.simg',
        '     needs:   base',
        'build mode: root',
        '3 targets in build order, 3 to build',
        '',
      ].join('\n'),
    );
    expect(r.code).toBe(0);
  });

  it('plan --json gives absolute paths and dependencies', async () => {
    const r = await runCliInProcess(['plan', 'api', '--json'], { cwd });
    expect(JSON.parse(r.stdout)).toEqual({
      build: { mode: 'root' },
      ignored: null,
      manifest: join(cwd, 'orchestrator.yaml'),
      targets: [
        {
          name: 'base',
          source: null,
          recipe: join(cwd, 'recipes/base.def'),
          format: 'sandbox',
          output: join(cwd, 'build/base'),
          dependencies: [],
          args: { PYTHON_PACKAGES: 'numpy' },
          status: 'stale',
          reasons: [{ code: 'never-built', message: 'never built' }],
        },
        {
          name: 'api',
          source: { kind: 'target', text: 'target:base' },
          recipe: join(cwd, 'recipes/api.def'),
          format: 'squashfs',
          output: join(cwd, 'build/api.simg'),
          dependencies: ['base'],
          args: { PYTHON_PACKAGES: 'numpy', PORT: '8080' },
          status: 'stale',
          reasons: [{ code: 'never-built', message: 'never built' }],
        },
      ],
    });
  });

  it('plan shows ext3 sizes', async () => {
    const r = await runCliInProcess(['plan', 'tools', '-C', join(EXAMPLES, 'writable-ext3')]);
    expect(r.stdout).toContain('     format:  ext3, 256MiB\n');
  });

  it('plan with unknown names exits 2 with a did-you-mean', async () => {
    const r = await runCliInProcess(['plan', 'wroker', 'apps'], { cwd });
    expect(r.stderr).toBe("error: unknown target or group 'wroker'\n  hint: did you mean 'worker'?\n");
    expect(r.stdout).toBe('');
    expect(r.code).toBe(2);
  });

  it('graph prints text and mermaid', async () => {
    expect((await runCliInProcess(['graph'], { cwd })).stdout).toBe('base (sandbox)\napi (squashfs) <- base\nworker (squashfs) <- base\n');
    const m = await runCliInProcess(['graph', '--format', 'mermaid', '-C', join(EXAMPLES, 'registry-to-production')]);
    expect(m.stdout).toBe(
      [
        'graph LR',
        '  t0["dev (sandbox)"]',
        '  s0(["docker://ubuntu:24.04"])',
        '  t1["hello (squashfs)"]',
        '  t2["hello-from-dev (squashfs)"]',
        '  s0 --> t0',
        '  t0 --> t2',
        '',
      ].join('\n'),
    );
  });

  it('every command has --help', async () => {
    for (const name of ['validate', 'plan', 'graph']) {
      const r = await runCliInProcess([name, '--help'], { cwd });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: orchestrator ${name} .*\\n`));
      expect(r.stdout).toContain('-C, --directory DIR');
    }
  });

  it('graph refuses an unknown format with a did-you-mean', async () => {
    const r = await runCliInProcess(['graph', '--format', 'dto'], { cwd });
    expect(r.stderr).toBe("error: invalid value 'dto' for --format: expected one of text, dot, mermaid\n  hint: did you mean 'dot'?\n");
    expect(r.code).toBe(2);
  });
});

describe('manifest errors through the built CLI', () => {
  let rig: Rig;
  beforeEach(async () => {
    rig = await Rig.create();
  });
  afterEach(() => rig.cleanup());

  it('validate, plan and graph exit 2 on a broken manifest and write nothing', async () => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  app:\n    from: target:bse\n    format: squashfs\n  base:\n    from: docker://alpine\n    format: sandbox\n' });
    const expected = [
      "orchestrator.yaml:4:11: error: unknown target 'bse' in 'from' of target 'app'",
      '      from: target:bse',
      '            ^~~~~~~~~~',
      "  hint: did you mean 'base'?",
      '1 error',
      '',
    ].join('\n');
    for (const argv of [['validate'], ['plan'], ['graph', '--format', 'dot']]) {
      const r = await rig.spawn(argv);
      expect(r.stderr).toBe(expected);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(2);
    }
    expect(rig.files()).toEqual(['orchestrator.yaml']);
  });

  it('validate reports several errors at once with their count', async () => {
    const r = await runCli(['validate'], { cwd: join(REPO_ROOT, 'test/fixtures/manifests/several-errors') });
    expect(r.code).toBe(2);
    expect(r.stderr.match(/^orchestrator\.yaml:\d+:\d+: error: /gm)).toHaveLength(6);
    expect(r.stderr.endsWith('\n6 errors\n')).toBe(true);
  });

  it('validate names a missing manifest', async () => {
    const r = await rig.cli(['validate']);
    expect(r.stderr).toBe('error: no orchestrator.yaml in the current folder\n  hint: create orchestrator.yaml, or name one with -f FILE or -C DIR\n1 error\n');
    expect(r.code).toBe(2);
  });

  it("the README's manifest example is valid", async () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(yaml).toContain('version: 1');
    rig.write({ 'orchestrator.yaml': yaml!, 'recipes/hello.def': 'Bootstrap: docker\nFrom: ubuntu:24.04\n' });
    const r = await rig.cli(['validate']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok: 5 targets\n');
  });

  it('validate -f FILE reads another manifest and says ok', async () => {
    rig.write({ 'ci.yaml': 'version: 1\ntargets:\n  a:\n    from: docker://alpine\n    output: out/a.simg\n' });
    const r = await rig.cli(['validate', '-f', 'ci.yaml']);
    expect(r.stdout).toBe('ok: 1 target\n');
    expect(r.code).toBe(0);
  });
});

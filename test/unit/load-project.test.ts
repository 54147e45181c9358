import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { formatDiagnostics } from '../../src/report/diagnostics.js';
import { loadProject } from '../../src/manifest/load-project.js';
import { parseSize } from '../../src/manifest/parse-size.js';
import { parseSourceRef } from '../../src/manifest/parse-source-ref.js';
import { MANIFEST_SCHEMA_URL } from '../../src/manifest/schema-check.js';
import { Rig } from '../helpers/rig.js';

const RECIPE = 'Bootstrap: docker\nFrom: ubuntu:24.04\n\n%post\n    echo hi\n';

let rig: Rig;
beforeEach(async () => {
  rig = await Rig.create();
});
afterEach(() => rig.cleanup());

describe('loadProject', () => {
  it('builds a typed Project with absolute paths, defaults and locations', async () => {
    rig.write({
      'orchestrator.yaml': [
        'version: 1',
        'cache:',
        '  dir: ~/caches/orch',
        'args:',
        '  PY: "3.12"',
        '  DEBUG: false',
        'targets:',
        '  base:',
        '    from: docker://ubuntu:24.04',
        '    output: build/ubuntu/',
        '  dev:',
        '    from: target:base',
        '    recipe: recipes/hello.def',
        '    format: sandbox',
        '    args: {PY: 3.13}',
        '    inputs: [data/*.csv]',
        '  hello:',
        '    recipe: recipes/hello.def',
        '    format: squashfs',
        '    test: false',
        '  rw:',
        '    from: oci:images/layout:v2',
        '    format: ext3',
        '    size: 512MiB',
        '  "7":',
        '    from: ./images/base.simg',
        '    output: out/seven/',
        'groups:',
        '  default: [hello]',
        '',
      ].join('\n'),
      'recipes/hello.def': RECIPE,
    });
    const { project, diagnostics } = await loadProject({ cwd: rig.dir, homedir: '/home/u' });
    expect(diagnostics).toEqual([]);
    const p = project!;
    expect(p.file).toBe(rig.path('orchestrator.yaml'));
    expect(p.dir).toBe(rig.dir);
    expect(p.cacheDir).toBe('/home/u/caches/orch');
    expect(p.args).toEqual({ PY: '3.12', DEBUG: 'false' });
    // File order, even for a name that JavaScript would sort first.
    expect(p.targets.map((t) => t.name)).toEqual(['base', 'dev', 'hello', 'rw', '7']);
    const [base, dev, hello, rw, seven] = p.targets;
    expect(base).toMatchObject({ from: { kind: 'docker', ref: 'ubuntu:24.04' }, format: 'sandbox', output: rig.path('build/ubuntu'), outputGiven: true });
    expect(dev).toMatchObject({
      from: { kind: 'target', target: 'base', text: 'target:base' },
      recipe: rig.path('recipes/hello.def'),
      output: rig.path('build/dev'),
      outputGiven: false,
      args: { PY: '3.13', DEBUG: 'false' },
      inputs: ['data/*.csv'],
      test: true,
      dependencies: ['base'],
    });
    expect(dev!.from).toEqual({ kind: 'target', text: 'target:base', target: 'base' });
    expect(hello).toMatchObject({ format: 'squashfs', output: rig.path('build/hello.simg'), test: false, dependencies: [] });
    expect(hello!.from).toBeUndefined();
    expect(rw).toMatchObject({ from: { kind: 'oci', dir: rig.path('images/layout'), tag: 'v2' }, format: 'ext3', output: rig.path('build/rw.img'), size: 512 * 1024 * 1024 });
    expect(seven).toMatchObject({ from: { kind: 'path', path: rig.path('images/base.simg') }, format: 'sandbox', output: rig.path('out/seven') });
    expect(p.groups).toMatchObject([{ name: 'default', members: ['hello'] }]);
    // Locations of values, for later errors.
    expect(dev!.locations.recipe).toEqual({ file: 'orchestrator.yaml', line: 13, column: 13, endColumn: 30, sourceLine: '    recipe: recipes/hello.def' });
    expect(dev!.locations.name).toMatchObject({ line: 11, column: 3, endColumn: 6 });
    expect(rw!.locations.size).toMatchObject({ line: 24, column: 11 });
    expect(dev!.locations.args['PY']).toMatchObject({ line: 15, column: 16 });
    expect(dev!.locations.inputs[0]).toMatchObject({ line: 16, column: 14 });
    expect(p.groups[0]!.locations.members[0]).toMatchObject({ line: 29, column: 13 });
  });

  it('reads -C DIR and -f FILE, and names files relative to the working folder', async () => {
    rig.write({ 'proj/other.yaml': 'version: 1\ntargets:\n  a: {from: docker://alpine, format: sandbox}\n' });
    const r = await loadProject({ cwd: rig.dir, dir: 'proj', file: 'other.yaml' });
    expect(r.project?.file).toBe(rig.path('proj/other.yaml'));
    rig.write({ 'proj/bad.yaml': 'version: 1\ntargets:\n  a: {from: docker://alpine, format: sandbx}\n' });
    const bad = await loadProject({ cwd: rig.dir, dir: 'proj', file: 'bad.yaml' });
    expect(formatDiagnostics(bad.diagnostics)).toBe(
      [
        "proj/bad.yaml:3:38: error: invalid format 'sandbx' for target 'a': expected sandbox, ext3, squashfs or sif",
        '    a: {from: docker://alpine, format: sandbx}',
        '                                       ^~~~~~',
        "  hint: did you mean 'sandbox'?",
      ].join('\n'),
    );
  });

  it('says when there is no manifest', async () => {
    expect((await loadProject({ cwd: rig.dir })).diagnostics).toEqual([
      {
        severity: 'error',
        reason: 'manifest-not-found',
        message: 'no orchestrator.yaml in the current folder',
        hint: 'create orchestrator.yaml, or name one with -f FILE or -C DIR',
      },
    ]);
    expect((await loadProject({ cwd: rig.dir, dir: 'nope' })).diagnostics[0]?.message).toBe("no such folder 'nope'");
    expect((await loadProject({ cwd: rig.dir, file: 'x.yaml' })).diagnostics[0]?.message).toBe("manifest 'x.yaml' not found");
  });

  it('reports an empty manifest and a missing targets mapping', async () => {
    rig.write({ 'orchestrator.yaml': '# nothing yet\n' });
    expect((await loadProject({ cwd: rig.dir })).diagnostics.map((d) => d.message)).toEqual(['the manifest is empty']);
    rig.write({ 'orchestrator.yaml': 'version: 1\n' });
    expect((await loadProject({ cwd: rig.dir })).diagnostics.map((d) => d.message)).toEqual(["missing required key 'targets' at the top level"]);
  });

  it('refuses outputs that would swallow the project', async () => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  a:\n    from: docker://alpine\n    output: ./\n' });
    const r = await loadProject({ cwd: rig.dir });
    expect(r.diagnostics.map((d) => [d.reason, d.message])).toEqual([
      ['manifest-output-contains-project', "output './' of target 'a' would hold the project itself"],
    ]);
  });

  it('refuses a group named like a target, and a group that holds itself', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  a: {from: docker://alpine, format: sandbox}\ngroups:\n  a: [a]\n  g: [g]\n',
    });
    const r = await loadProject({ cwd: rig.dir });
    expect(r.diagnostics.map((d) => d.message)).toEqual(["group 'a' has the name of a target", 'group cycle: g → g']);
  });

  it('reports a target built from a group, and a recipe that is a folder', async () => {
    rig.write({
      'orchestrator.yaml': 'version: 1\ntargets:\n  a: {from: target:all, format: sandbox}\n  b: {recipe: recipes, format: sandbox}\ngroups:\n  all: [b]\n',
      'recipes/x.def': RECIPE,
    });
    const r = await loadProject({ cwd: rig.dir });
    expect(r.diagnostics.map((d) => [d.message, d.hint])).toEqual([
      ["unknown target 'all' in 'from' of target 'a'", "'all' is a group; 'from' needs a single target"],
      ["recipe 'recipes' is not a file", 'a recipe is a Singularity definition file'],
    ]);
  });

  it('follows YAML anchors, aliases and merge keys', async () => {
    rig.write({
      'orchestrator.yaml': [
        'version: 1',
        'targets:',
        '  base: &common',
        '    from: docker://alpine:3.20',
        '    format: sandbox',
        '  copy: *common',
        '  app:',
        '    <<: *common',
        '    format: squashfs',
        '',
      ].join('\n'),
    });
    const { project, diagnostics } = await loadProject({ cwd: rig.dir });
    expect(diagnostics).toEqual([]);
    expect(project!.targets.map((t) => [t.name, t.from?.text, t.format, t.output])).toEqual([
      ['base', 'docker://alpine:3.20', 'sandbox', rig.path('build/base')],
      ['copy', 'docker://alpine:3.20', 'sandbox', rig.path('build/copy')],
      ['app', 'docker://alpine:3.20', 'squashfs', rig.path('build/app.simg')],
    ]);
    // An alias's fields point at the anchored text.
    expect(project!.targets[1]!.locations.from).toMatchObject({ line: 4, column: 11 });
  });

  it('wants a mapping at the top', async () => {
    rig.write({ 'orchestrator.yaml': '- a\n- b\n' });
    expect(formatDiagnostics((await loadProject({ cwd: rig.dir })).diagnostics)).toBe(
      "orchestrator.yaml:1:1: error: expected a mapping for the manifest, got a list\n  - a\n  ^~~",
    );
  });

  it('names unsupported future keys as such', async () => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  a:\n    from: docker://alpine\n    format: sandbox\n    cache: {}\n' });
    const r = await loadProject({ cwd: rig.dir });
    expect(r.diagnostics.map((d) => d.message)).toEqual(["'cache' in target 'a' is not supported yet"]);
  });

  it('expands a matrix (no longer a reserved key) into one target per value', async () => {
    rig.write({ 'orchestrator.yaml': 'version: 1\ntargets:\n  a:\n    from: docker://alpine\n    format: sandbox\n    matrix: {PY: [1, 2]}\n' });
    const r = await loadProject({ cwd: rig.dir });
    expect(r.diagnostics).toEqual([]);
    expect(r.project!.targets.map((t) => [t.name, t.args])).toEqual([
      ['a-1', { PY: '1' }],
      ['a-2', { PY: '2' }],
    ]);
  });
});

describe('parseSize', () => {
  it('reads bytes and binary and decimal units, and refuses the rest', () => {
    expect(parseSize(1234)).toBe(1234);
    expect(parseSize('1234')).toBe(1234);
    expect(parseSize('512MiB')).toBe(536870912);
    expect(parseSize('1GiB')).toBe(1073741824);
    expect(parseSize('10MB')).toBe(10_000_000);
    expect(parseSize('10M')).toBeUndefined();
    expect(parseSize('0')).toBeUndefined();
    expect(parseSize('1.5GiB')).toBeUndefined();
  });
});

describe('parseSourceRef', () => {
  it('reads every scheme and resolves paths against the manifest folder', () => {
    expect(parseSourceRef('docker://ghcr.io/a/b:1@sha256:00', '/p')).toEqual({ kind: 'docker', text: 'docker://ghcr.io/a/b:1@sha256:00', ref: 'ghcr.io/a/b:1@sha256:00' });
    expect(parseSourceRef('oci:layout', '/p')).toEqual({ kind: 'oci', text: 'oci:layout', dir: '/p/layout' });
    expect(parseSourceRef('oci:/abs/layout:tag', '/p')).toEqual({ kind: 'oci', text: 'oci:/abs/layout:tag', dir: '/abs/layout', tag: 'tag' });
    expect(parseSourceRef('oci-archive:a.tar', '/p')).toEqual({ kind: 'oci-archive', text: 'oci-archive:a.tar', file: '/p/a.tar' });
    expect(parseSourceRef('docker-archive:/x/a.tar', '/p')).toEqual({ kind: 'docker-archive', text: 'docker-archive:/x/a.tar', file: '/x/a.tar' });
    expect(parseSourceRef('target:base', '/p')).toEqual({ kind: 'target', text: 'target:base', target: 'base' });
    expect(parseSourceRef('images/b.simg', '/p')).toEqual({ kind: 'path', text: 'images/b.simg', path: '/p/images/b.simg' });
    expect(parseSourceRef('ubuntu:24.04', '/p')).toBeUndefined();
    expect(parseSourceRef('target:Bad', '/p')).toBeUndefined();
  });
});

describe('manifest.schema.json', () => {
  it('describes every property, for editors', () => {
    const schema = JSON.parse(readFileSync(MANIFEST_SCHEMA_URL, 'utf8')) as Record<string, unknown>;
    const missing: string[] = [];
    const defs = schema['$defs'] as Record<string, Record<string, unknown>>;
    const described = (s: Record<string, unknown>): boolean =>
      typeof s['description'] === 'string' || (typeof s['$ref'] === 'string' && typeof defs[String(s['$ref']).split('/').pop()!]?.['description'] === 'string');
    const walk = (s: Record<string, unknown>, at: string): void => {
      for (const [k, v] of Object.entries((s['properties'] as Record<string, Record<string, unknown>>) ?? {})) {
        if (!described(v)) missing.push(`${at}.${k}`);
        walk(v, `${at}.${k}`);
      }
    };
    walk(schema, '');
    for (const [k, v] of Object.entries(defs)) {
      if (!described(v)) missing.push(`$defs.${k}`);
      walk(v, `$defs.${k}`);
    }
    expect(missing).toEqual([]);
    expect(schema['$id']).toBe('urn:orchestrator:schema:manifest:1');
  });
});

import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { dockerEnvScript, dockerRunscript, singularityMetadata } from '../../src/builder/singularity-metadata.js';
import { originOf } from '../../src/builder/source-resolver.js';
import { parseSourceRef } from '../../src/manifest/parse-source-ref.js';
import { parseRecipe } from '../../src/recipe/parse-recipe.js';

const sh = (script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) =>
  execFileSync('/bin/sh', ['-c', script, 'sh', ...args], { env: { PATH: '/usr/bin:/bin', ...env }, encoding: 'utf8' });

describe('dockerRunscript (Docker ENTRYPOINT/CMD rules)', () => {
  // Replace `exec` by printing the words so the script's decisions can be observed.
  const observe = (script: string, args: string[]) =>
    sh(script.replace(/\bexec (.*)$/gm, 'printf "[%s]" $1; exit').replace(/^#!.*\n/, '') + '\n', args);

  it('runs CMD, and arguments replace it', () => {
    const s = dockerRunscript({ cmd: ['echo', "it's", 'a b'] });
    expect(observe(s, [])).toBe("[echo][it's][a b]");
    expect(observe(s, ['ls', '-l'])).toBe('[ls][-l]');
  });

  it('keeps ENTRYPOINT and appends CMD or the arguments', () => {
    const s = dockerRunscript({ entrypoint: ['/entry.sh', '--flag'], cmd: ['default'] });
    expect(observe(s, [])).toBe('[/entry.sh][--flag][default]');
    expect(observe(s, ['x y', 'z'])).toBe('[/entry.sh][--flag][x y][z]');
  });

  it('falls back to a shell without either', () => {
    expect(observe(dockerRunscript({}), ['-c', 'true'])).toBe('[/bin/sh][-c][true]');
  });
});

describe('dockerEnvScript', () => {
  it('lets host values win except PATH, and quotes safely', () => {
    const script = dockerEnvScript(['PATH=/opt/bin:/usr/bin:/bin', 'LANG=C.UTF-8', 'ODD=a "quoted" $dollar `tick`', 'bad-key=x']);
    const out = sh(`${script}\necho "$PATH|$LANG|$ODD"`, [], { LANG: 'host-lang', PATH: '/usr/bin:/bin' });
    expect(out).toBe('/opt/bin:/usr/bin:/bin|host-lang|a "quoted" $dollar `tick`\n');
    expect(script).not.toContain('bad-key');
  });
});

describe('singularityMetadata', () => {
  const recipe = parseRecipe(
    [
      'Bootstrap: docker',
      'From: debian:bookworm',
      '%environment',
      '  export GREETING=hello',
      '%runscript -c /bin/bash',
      '  echo "$GREETING $@"',
      '%test',
      '  test -f /etc/debian_version',
      '%labels',
      '  Author someone',
      '%help',
      '  Says hello.',
      '%apprun tool',
      '  exec tool "$@"',
    ].join('\n'),
    { file: 'r.def' },
  ).recipe;
  const entries = singularityMetadata({
    stage: recipe.stages[0]!,
    recipeText: recipe.text,
    imageConfig: { env: ['PATH=/usr/local/bin:/usr/bin:/bin'], labels: { 'from.base': 'yes', Author: 'base' }, cmd: ['bash'] },
    buildDate: '2024-01-01T00:00:00Z',
    toolVersion: '0.1.0',
    arch: 'amd64',
  });
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const content = (p: string) => {
    const e = byPath.get(p);
    return e?.type === 'file' ? e.content : undefined;
  };

  it('lays out /.singularity.d as Singularity does', () => {
    for (const p of [
      '.singularity.d/actions/exec',
      '.singularity.d/actions/run',
      '.singularity.d/actions/shell',
      '.singularity.d/actions/start',
      '.singularity.d/actions/test',
      '.singularity.d/env/01-base.sh',
      '.singularity.d/env/10-docker2singularity.sh',
      '.singularity.d/env/90-environment.sh',
      '.singularity.d/env/94-appsbase.sh',
      '.singularity.d/env/95-apps.sh',
      '.singularity.d/env/99-base.sh',
      '.singularity.d/env/99-runtimevars.sh',
      '.singularity.d/runscript',
      '.singularity.d/startscript',
      '.singularity.d/test',
      '.singularity.d/runscript.help',
      '.singularity.d/labels.json',
      '.singularity.d/Singularity',
      'scif/apps/tool/scif/runscript',
    ]) {
      expect(byPath.has(p), p).toBe(true);
    }
    expect(byPath.get('singularity')).toEqual({ type: 'symlink', path: 'singularity', target: '.singularity.d/runscript' });
    expect(byPath.get('.exec')).toMatchObject({ target: '.singularity.d/actions/exec' });
    expect(byPath.get('environment')).toMatchObject({ target: '.singularity.d/env/90-environment.sh' });
  });

  it("lays out a SCIF app as Apptainer does: 01-base.sh with the SCIF variables, labels.json with SCIF_APP_NAME, 94-appsbase.sh", () => {
    const base = content('scif/apps/tool/scif/env/01-base.sh')!;
    const out = sh(`${base}\necho "$SCIF_APPNAME|$SCIF_APPROOT|$SCIF_APPMETA|$SCIF_DATA|$SCIF_APPDATA|$SCIF_APPINPUT|$SCIF_APPOUTPUT"`, [], {});
    expect(out).toBe('tool|/scif/apps/tool|/scif/apps/tool/scif|/scif/data|/scif/data/tool|/scif/data/tool/input|/scif/data/tool/output\n');
    expect(JSON.parse(content('scif/apps/tool/scif/labels.json')!)).toEqual({ SCIF_APP_NAME: 'tool' });
    const appsBase = sh(`${content('.singularity.d/env/94-appsbase.sh')!}\necho "$SCIF_APPRUN_tool|$SCIF_APPBIN_tool|\${SCIF_APPENV_tool:-none}"`, [], {});
    expect(appsBase).toBe('/scif/apps/tool/scif/runscript|/scif/apps/tool/bin|none\n');
    for (const d of ['scif/data/tool/input', 'scif/data/tool/output', 'scif/apps/tool/bin', 'scif/apps/tool/lib']) expect(byPath.get(d)?.type, d).toBe('dir');
  });

  it('writes the recipe sections where the runtime reads them', () => {
    expect(content('.singularity.d/runscript')).toBe('#!/bin/bash\n\n  echo "$GREETING $@"\n');
    expect(content('.singularity.d/env/90-environment.sh')).toContain('  export GREETING=hello\n');
    expect(content('.singularity.d/test')).toBe('#!/bin/sh\n\n  test -f /etc/debian_version\n');
    expect(content('.singularity.d/Singularity')).toBe(recipe.text);
  });

  it('merges labels: defaults, base image, then the recipe', () => {
    const labels = JSON.parse(content('.singularity.d/labels.json')!) as Record<string, string>;
    expect(labels).toMatchObject({
      Author: 'someone',
      'from.base': 'yes',
      'org.label-schema.schema-version': '1.0',
      'org.label-schema.build-date': '2024-01-01T00:00:00Z',
      'org.label-schema.usage.singularity.deffile.bootstrap': 'docker',
      'org.label-schema.usage.singularity.deffile.from': 'debian:bookworm',
      'org.label-schema.usage': '/.singularity.d/runscript.help',
    });
    // Stable bytes: keys sorted.
    const keys = Object.keys(labels);
    expect(keys).toEqual([...keys].sort());
  });

  it('sources env files in order through the exec action', () => {
    // Run the exec action against a fake root: rewrite /.singularity.d to a temp copy.
    const root = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
    try {
      for (const e of entries) {
        if (e.type === 'dir') execFileSync('mkdir', ['-p', `${root}/${e.path}`]);
      }
      for (const e of entries) {
        if (e.type === 'file' && e.path.startsWith('.singularity.d/')) {
          execFileSync('sh', ['-c', 'cat > "$1"', 'sh', `${root}/${e.path}`], {
            input: e.content.replaceAll('/.singularity.d', `${root}/.singularity.d`),
          });
        }
      }
      const out = sh(`. ${root}/.singularity.d/actions/exec`, ['sh', '-c', 'echo "$GREETING|$PATH|$LD_LIBRARY_PATH"'], {});
      expect(out).toBe(`hello|/usr/local/bin:/usr/bin:/bin|${root}/.singularity.d/libs\n`);
    } finally {
      execFileSync('rm', ['-rf', root]);
    }
  });
});

describe('provenance labels', () => {
  const labelsOf = (source?: { bootstrap: string; from: string }) => {
    const recipe = parseRecipe('Bootstrap: library\nFrom: debian:9\n%runscript\n  echo hi\n', { file: 'r.def' }).recipe;
    const entries = singularityMetadata({
      stage: recipe.stages[0]!,
      recipeText: recipe.text,
      buildDate: '2024-01-01T00:00:00Z',
      toolVersion: '0.1.0',
      arch: 'amd64',
      ...(source ? { source } : {}),
    });
    const file = entries.find((e) => e.path === '.singularity.d/labels.json');
    const labels = JSON.parse(file?.type === 'file' ? file.content : '{}') as Record<string, string>;
    return Object.fromEntries(Object.entries(labels).filter(([k]) => k.includes('deffile')));
  };

  it("name the recipe header's source when it is the one used", () => {
    expect(labelsOf()).toEqual({
      'org.label-schema.usage.singularity.deffile': 'Singularity',
      'org.label-schema.usage.singularity.deffile.bootstrap': 'library',
      'org.label-schema.usage.singularity.deffile.from': 'debian:9',
    });
  });

  it('name the source used (a manifest from: docker://...) and keep the header as deffile.header.*', () => {
    expect(labelsOf({ bootstrap: 'docker', from: 'registry.local/debian:bookworm' })).toEqual({
      'org.label-schema.usage.singularity.deffile': 'Singularity',
      'org.label-schema.usage.singularity.deffile.bootstrap': 'docker',
      'org.label-schema.usage.singularity.deffile.from': 'registry.local/debian:bookworm',
      'org.label-schema.usage.singularity.deffile.header.bootstrap': 'library',
      'org.label-schema.usage.singularity.deffile.header.from': 'debian:9',
    });
  });

  it("are the header's own when the manifest's from: names the header's source", () => {
    expect(labelsOf({ bootstrap: 'library', from: 'debian:9' })).toEqual(labelsOf());
  });

  it('are made from a manifest from: as a recipe header would say it', () => {
    const origin = (text: string) => originOf(parseSourceRef(text, '/project')!);
    expect(origin('docker://registry.local/debian:bookworm')).toEqual({ bootstrap: 'docker', from: 'registry.local/debian:bookworm' });
    expect(origin('oci:layout:v1')).toEqual({ bootstrap: 'oci', from: 'layout:v1' });
    expect(origin('docker-archive:img.tar')).toEqual({ bootstrap: 'docker-archive', from: 'img.tar' });
    expect(origin('target:dev')).toEqual({ bootstrap: 'localimage', from: 'target:dev' });
    expect(origin('./rootfs')).toEqual({ bootstrap: 'localimage', from: './rootfs' });
  });
});

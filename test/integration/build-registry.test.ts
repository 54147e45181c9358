import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReference } from '../../src/registry/reference.js';
import { runCli } from '../helpers/cli.js';
import { buildImage, busyboxLayer, pushImage, threeLayers } from '../helpers/images.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

/**
 * `orchestrator build` from a real registry: the busybox layer plus three layers with whiteouts
 * and an opaque folder, then a recipe that deletes more in %post. Every export must show exactly
 * the merged tree; the Docker config must map as Apptainer maps it.
 */
let registry: TestRegistry;
let work: string;
let ref: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  registry = await startRegistry();
  work = mkdtempSync(join(tmpdir(), 'orch-build-reg-'));
  env = { ...process.env, ORCHESTRATOR_CACHE: join(work, 'cache') };
  const image = buildImage([await busyboxLayer(), ...(await threeLayers())], {
    config: {
      Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'FROM_IMAGE=yes'],
      Cmd: ['/bin/sh', '-c', 'echo docker cmd says hello'],
      Labels: { 'org.example.from-image': 'label-value' },
    },
  });
  const r = parseReference(`${registry.host}/test/layered:1.0`);
  if (!r.ok) throw new Error(r.error.message);
  await pushImage(r.value, image);
  ref = `${registry.host}/test/layered:1.0`;
  writeFileSync(
    join(work, 'app.def'),
    [
      'Bootstrap: docker',
      `From: ${ref}`,
      '%post',
      '    rm /data/keep',
      '    echo built > /built.txt',
      '%environment',
      '    export FROM_RECIPE=yes',
      '%runscript',
      '    echo "runscript: $FROM_IMAGE $FROM_RECIPE $@"',
    ].join('\n'),
  );
});
afterAll(async () => {
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCli(args, { cwd: work, env: { ...env, ...extra } });
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

/** Regular files of a squashfs image (launch line at 31). */
function squashFiles(image: string): string[] {
  return execFileSync('unsquashfs', ['-l', '-o', '31', image], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith('squashfs-root/'))
    .map((l) => l.slice('squashfs-root/'.length));
}

function catSquash(image: string, path: string): string {
  return execFileSync('unsquashfs', ['-cat', '-o', '31', image, path], { encoding: 'utf8' });
}

describe('build from a registry image', () => {
  it('applies whiteouts, opaque folders and %post deletions in the squashfs image', async () => {
    const r = await cli(['build', 'app.simg', 'app.def']);
    expect(r.stderr).toContain('built app.simg (squashfs)');
    expect(r.code).toBe(0);
    const files = squashFiles(join(work, 'app.simg'));
    for (const gone of ['etc/a', 'data/x/old1', 'data/x/old2', 'data/keep']) expect(files).not.toContain(gone);
    for (const kept of ['etc/b', 'data/x/new', 'hello.txt', 'built.txt', 'bin/busybox']) expect(files).toContain(kept);
    expect(catSquash(join(work, 'app.simg'), 'etc/b')).toBe('b3\n');
    expect(JSON.parse(catSquash(join(work, 'app.simg'), '.singularity.d/labels.json'))).toMatchObject({
      'org.example.from-image': 'label-value',
      'org.label-schema.usage.singularity.deffile.bootstrap': 'docker',
      'org.label-schema.usage.singularity.deffile.from': ref,
    });
    expect(catSquash(join(work, 'app.simg'), '.singularity.d/env/10-docker2singularity.sh')).toContain('export FROM_IMAGE="${FROM_IMAGE:-"yes"}"');
    const run = await cli(['run', 'app.simg', 'arg1']);
    expect(run.stdout).toBe('runscript: yes yes arg1\n');
  });

  it('exports the same tree as a sandbox and as ext3, from cached steps', async () => {
    const s = await cli(['build', '--sandbox', 'app-sandbox', 'app.def']);
    expect(s.code).toBe(0);
    expect(s.stderr).toContain('0 steps run, 2 from cache');
    expect(existsSync(join(work, 'app-sandbox/etc/a'))).toBe(false);
    expect(existsSync(join(work, 'app-sandbox/data/x/old1'))).toBe(false);
    expect(readFileSync(join(work, 'app-sandbox/data/x/new'), 'utf8')).toBe('new\n');
    const e = await cli(['build', '--writable', 'app.img', 'app.def']);
    expect(e.code).toBe(0);
    // /etc/localtime is the runtime's default bind; the rest comes from the image.
    const ls = await cli(['exec', 'app.img', 'ls', '/data/x', '/etc']);
    expect(ls.stdout.split(/\s+/).filter(Boolean).sort()).toEqual(['/data/x:', '/etc:', 'b', 'hosts', 'localtime', 'new', 'passwd', 'resolv.conf'].sort());
  });

  it('builds straight from docker:// and runs the image CMD', async () => {
    const r = await cli(['build', 'plain.simg', `docker://${ref}`]);
    expect(r.code).toBe(0);
    expect((await cli(['run', 'plain.simg'])).stdout).toBe('docker cmd says hello\n');
  });

  it('converts between the three formats', async () => {
    expect((await cli(['build', '--force', 'conv.img', '--writable', 'app.simg'])).code).toBe(0);
    expect((await cli(['build', '--sandbox', 'conv-sandbox', 'conv.img'])).code).toBe(0);
    expect((await cli(['build', 'conv.simg', 'conv-sandbox'])).code).toBe(0);
    const a = squashFiles(join(work, 'app.simg')).filter((f) => !f.startsWith('.singularity.d/labels.json'));
    const c = squashFiles(join(work, 'conv.simg')).filter((f) => !f.startsWith('.singularity.d/labels.json') && f !== 'lost+found');
    expect(c).toEqual(a);
    expect(catSquash(join(work, 'conv.simg'), 'built.txt')).toBe('built\n');
  });

  it('is reproducible with SOURCE_DATE_EPOCH, even with --no-cache', async () => {
    const epoch = { SOURCE_DATE_EPOCH: '1700000000' };
    expect((await cli(['build', '--force', 'r1.simg', 'app.def'], epoch)).code).toBe(0);
    expect((await cli(['build', '--force', '--no-cache', 'r2.simg', 'app.def'], epoch)).code).toBe(0);
    expect(sha(join(work, 'r1.simg'))).toBe(sha(join(work, 'r2.simg')));
  });

  it('builds multi-stage recipes, copying from an earlier stage', async () => {
    writeFileSync(
      join(work, 'multi.def'),
      [
        'Bootstrap: docker',
        `From: ${ref}`,
        'Stage: build',
        '%post',
        '    echo compiled > /artifact',
        '',
        'Bootstrap: docker',
        `From: ${ref}`,
        'Stage: final',
        '%files from build',
        '    /artifact /opt/artifact',
        '%runscript',
        '    cat /opt/artifact',
      ].join('\n'),
    );
    const r = await cli(['build', 'multi.simg', 'multi.def']);
    expect(r.code).toBe(0);
    expect((await cli(['run', 'multi.simg'])).stdout).toBe('compiled\n');
    expect(squashFiles(join(work, 'multi.simg'))).not.toContain('artifact');
  });

  it('runs only the named sections on top of an existing image with --section (Singularity 2.4)', async () => {
    expect((await cli(['build', '--sandbox', 'sec', 'app.def'])).code).toBe(0);
    writeFileSync(join(work, 'more.def'), `Bootstrap: docker\nFrom: ${ref}\n%post\n    echo sectioned > /sectioned\n%runscript\n    echo not used\n`);
    const r = await cli(['build', '--sandbox', '--section', 'post', 'sec', 'more.def']);
    expect(r.code).toBe(0);
    expect(readFileSync(join(work, 'sec/sectioned'), 'utf8')).toBe('sectioned\n');
    expect(readFileSync(join(work, 'sec/built.txt'), 'utf8')).toBe('built\n');
    expect(readFileSync(join(work, 'sec/.singularity.d/runscript'), 'utf8')).toContain('runscript: $FROM_IMAGE');
    const bad = await cli(['build', '--section', 'psot', 'sec.simg', 'more.def']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("error: --section 'psot' is not a section\n  hint: did you mean 'post'?\n");
  });

  it('refuses a bad reference with the part named, and an existing output without --force', async () => {
    const bad = await cli(['build', 'bad.simg', 'docker://Upper/Case']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("invalid image reference 'Upper/Case'");
    expect(existsSync(join(work, 'bad.simg'))).toBe(false);
    const exists = await cli(['build', 'app.simg', 'app.def']);
    expect(exists.code).toBe(2);
    expect(exists.stderr).toBe('error: app.simg already exists\n  hint: add --force to replace it, or choose another name\n');
  });
});

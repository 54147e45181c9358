import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSif } from '../../src/image/sif/read-sif.js';
import { writeSif } from '../../src/image/sif/write-sif.js';
import { goArch } from '../../src/image/sif/sif-format.js';
import { makeBusyboxTree, digestOf } from '../helpers/busybox-image.js';
import { runCli } from '../helpers/cli.js';
import { mountProbe } from '../helpers/mount-probe.js';
import { readableInstall } from '../helpers/readable-install.js';

// Our SIF of a busybox recipe: read back by our reader, the objects Apptainer writes, the
// squashfs partition (cut out by offset and size) mounts and equals the sandbox build of the same
// recipe, the container runs from it as root (loop mount at the offset) and as another user
// (extraction), and two builds under SOURCE_DATE_EPOCH are the same bytes.

const EPOCH = '1700000000';
let work: string;
let env: NodeJS.ProcessEnv;
let sif: string;
let userBin: string;
const { mountinfo, loops } = mountProbe(() => work);

const RECIPE = (base: string): string =>
  `Bootstrap: localimage\nFrom: ${base}\n\n%labels\n    Owner sif-tests\n\n%runscript\n    echo "sif runscript: $*"\n`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'orch-sif-writer-'));
  chmodSync(work, 0o755);
  makeBusyboxTree(join(work, 'base'));
  writeFileSync(join(work, 'app.def'), RECIPE(join(work, 'base')));
  env = { ...process.env, ORCHESTRATOR_CACHE: join(work, 'cache'), SOURCE_DATE_EPOCH: EPOCH };
  delete env['CI'];
  sif = join(work, 'app.sif');
  const r = await runCli(['build', '--quiet', sif, 'app.def'], { cwd: work, env });
  expect(r.stderr).toContain(`built ${sif} (sif)`);
  expect(r.code).toBe(0);
  userBin = readableInstall(join(work, 'install'));
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the sif format', () => {
  it('passes our reader, with the objects Apptainer writes, the partition aligned', async () => {
    const image = await readSif(sif);
    if (!image.ok) throw new Error(image.error.message);
    const list = await runCli(['sif', 'list', sif], { cwd: work, env });
    const part = image.value.objects[2]!;
    const [def, labels] = image.value.objects;
    const at = (o: { offset: number; size: number }): string => `|${o.offset}-${o.offset + o.size} `.padEnd(26);
    expect(list.stdout).toBe(
      [
        '------------------------------------------------------------------------------',
        'ID   |GROUP   |LINK    |SIF POSITION (start-end)  |TYPE',
        '------------------------------------------------------------------------------',
        `1    |1       |NONE    ${at(def!)} |Def.FILE`,
        `2    |1       |NONE    ${at(labels!)} |JSON.Labels`,
        `3    |1       |NONE    ${at(part)} |FS (Squashfs/*System/${goArch(process.arch)})`,
        '',
      ].join('\n'),
    );
    expect(def!.offset).toBe(32176);
    expect(labels!.offset).toBe(def!.offset + def!.size);
    expect(part.offset % 4096).toBe(0);
    const header = await runCli(['sif', 'header', sif], { cwd: work, env });
    expect(header.stdout).toContain('Launch Script:        #!/usr/bin/env run-singularity\n');
    expect(header.stdout).toContain('Created At:           2023-11-14 22:13:20 +0000 UTC\n');
    const fd = openSync(sif, 'r');
    const text = Buffer.alloc(def!.size);
    readSync(fd, text, 0, text.length, def!.offset);
    closeSync(fd);
    expect(text.toString()).toContain('%runscript\n    echo "sif runscript: $*"');
  });

  it('the squashfs partition, cut out by offset and size, mounts and equals the sandbox build', async () => {
    const image = await readSif(sif);
    if (!image.ok) throw new Error(image.error.message);
    const part = image.value.objects[2]!;
    const sandbox = join(work, 'app-sandbox');
    const b = await runCli(['build', '--quiet', '--sandbox', sandbox, 'app.def'], { cwd: work, env });
    expect(b.code).toBe(0);
    const cut = join(work, 'part.sqfs');
    const all = readFileSync(sif);
    const fd = openSync(cut, 'w');
    writeSync(fd, all.subarray(part.offset, part.offset + part.size));
    closeSync(fd);
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'squashfs', '-o', 'loop,ro', cut, mnt]);
    try {
      expect(digestOf(mnt)).toBe(digestOf(sandbox));
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it('run, exec and inspect --deffile as root', async () => {
    const before = { m: mountinfo(), l: loops() };
    const run = await runCli(['run', sif, 'a', 'b'], { cwd: work, env });
    expect(run.stdout).toBe('sif runscript: a b\n');
    expect(run.code).toBe(0);
    const exec = await runCli(['exec', sif, 'cat', '/etc/os-release'], { cwd: work, env });
    expect(exec.stdout).toBe('NAME="Busybox Test"\nID=busybox-test\n');
    const inspect = await runCli(['inspect', '--deffile', sif], { cwd: work, env });
    expect(inspect.stdout).toBe(RECIPE(join(work, 'base')));
    expect(mountinfo()).toBe(before.m);
    expect(loops()).toBe(before.l);
  });

  it('run as a user that is not root (the image extracted, as for .simg)', () => {
    const userCache = join(work, 'cache-65534');
    mkdirSync(userCache);
    execFileSync('chown', ['65534:65534', userCache]);
    const out = execFileSync('sh', ['-c', `setpriv --reuid=65534 --regid=65534 --clear-groups node "$2" run "$1" x 2>&1; setpriv --reuid=65534 --regid=65534 --clear-groups node "$2" exec "$1" id -u 2>&1`, 'sh', sif, userBin], {
      cwd: work,
      encoding: 'utf8',
      env: { ...process.env, HOME: '/nonexistent', ORCHESTRATOR_CACHE: userCache },
    });
    expect(out).toBe('sif runscript: x\n65534\n');
  });

  it('two builds with SOURCE_DATE_EPOCH are the same bytes', async () => {
    const again = join(work, 'again.sif');
    const r = await runCli(['build', '--quiet', '--no-cache', again, 'app.def'], { cwd: work, env });
    expect(r.code).toBe(0);
    expect(readFileSync(again).equals(readFileSync(sif))).toBe(true);
  });

  it('a SIF is a source: build a .simg from it', async () => {
    const simg = join(work, 'from-sif.simg');
    const r = await runCli(['build', '--quiet', simg, sif], { cwd: work, env });
    expect(r.stderr).toContain(`built ${simg} (squashfs)`);
    expect(r.code).toBe(0);
    const run = await runCli(['run', simg, 'y'], { cwd: work, env });
    expect(run.stdout).toBe('sif runscript: y\n');
    expect(existsSync(simg)).toBe(true);
  });

  it('converts in every direction: SIF to sandbox and ext3, .simg, sandbox and ext3 to SIF', async () => {
    const build = async (out: string, source: string, flags: string[] = []): Promise<void> => {
      const r = await runCli(['build', '--quiet', ...flags, out, source], { cwd: work, env });
      expect(r.stderr).toContain(`built ${out} (`);
      expect(r.code).toBe(0);
    };
    const runs = async (image: string): Promise<void> => {
      const r = await runCli(['run', image, 'z'], { cwd: work, env });
      expect(r.stdout).toBe('sif runscript: z\n');
    };
    await build('conv-sandbox', sif, ['--sandbox']);
    await runs(join(work, 'conv-sandbox'));
    await build('conv.img', sif, ['--writable']);
    await runs(join(work, 'conv.img'));
    for (const from of ['from-sif.simg', 'conv-sandbox', 'conv.img']) {
      const out = `${from.replace(/\W/g, '-')}.sif`;
      await build(out, join(work, from));
      await runs(join(work, out));
    }
  });

  it("a manifest target's from: names a SIF", async () => {
    const project = join(work, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'orchestrator.yaml'), `version: 1\ntargets:\n  child:\n    from: ${sif}\n    output: build/child.sif\n`);
    const r = await runCli(['up', '--progress', 'plain'], { cwd: project, env });
    expect(r.code).toBe(0);
    const run = await runCli(['run', join(project, 'build/child.sif'), 'w'], { cwd: project, env });
    expect(run.stdout).toBe('sif runscript: w\n');
    const again = await runCli(['up', '--progress', 'plain'], { cwd: project, env });
    expect(again.stdout + again.stderr).toContain('built 0, fresh 1, failed 0, skipped 0');
  });

  it('Bootstrap: localimage takes a SIF', async () => {
    writeFileSync(join(work, 'on-sif.def'), `Bootstrap: localimage\nFrom: ${sif}\n\n%post\n    echo from-post > /post.txt\n`);
    const r = await runCli(['build', '--quiet', '--sandbox', 'on-sif', 'on-sif.def'], { cwd: work, env });
    expect(r.code).toBe(0);
    expect(readFileSync(join(work, 'on-sif/post.txt'), 'utf8')).toBe('from-post\n');
    expect(readFileSync(join(work, 'on-sif/etc/os-release'), 'utf8')).toBe('NAME="Busybox Test"\nID=busybox-test\n');
  });

  it('inspect shows the definition file and labels of the SIF objects; JSON.Generic objects are listed', async () => {
    const sqfs = join(work, 'base.sqfs');
    execFileSync('mksquashfs', [join(work, 'base'), sqfs, '-noappend', '-quiet', '-no-progress'], { stdio: 'ignore' });
    const out = join(work, 'objects.sif');
    const written = await writeSif({
      output: out,
      squashfs: { file: sqfs, offset: 0 },
      deffile: Buffer.from('Bootstrap: from-the-sif-object\n'),
      labels: Buffer.from('{"Where": "sif object"}'),
      genericJson: [{ name: 'oci-config.json', data: Buffer.from('{}') }],
      arch: 'amd64',
      epoch: 0,
    });
    expect(written.ok).toBe(true);
    const def = await runCli(['inspect', '--deffile', out], { cwd: work, env });
    expect(def.stdout).toBe('Bootstrap: from-the-sif-object\n');
    const labels = await runCli(['inspect', '--labels', out], { cwd: work, env });
    expect(labels.stdout).toBe('Where: sif object\n');
    const list = await runCli(['sif', 'list', out], { cwd: work, env });
    expect(list.stdout.split('\n').slice(3, 7).map((l) => l.slice(l.lastIndexOf('|') + 1))).toEqual(['Def.FILE', 'JSON.Labels', 'JSON.Generic', 'FS (Squashfs/*System/amd64)']);
    const json = await runCli(['sif', 'list', '--json', out], { cwd: work, env });
    expect((JSON.parse(json.stdout) as { name: string }[])[2]!.name).toBe('oci-config.json');
    const header = await runCli(['sif', 'header', out], { cwd: work, env });
    expect(header.stdout).toContain('Created At:           1970-01-01 00:00:00 +0000 UTC\n');
  });

  it('a failed SIF write leaves the previous image and no temporary file', async () => {
    const dir = join(work, 'failing');
    mkdirSync(dir);
    const out = join(dir, 'img.sif');
    copyFileSync(sif, out);
    const before = readFileSync(out);
    const bad = await writeSif({ output: out, squashfs: { file: join(work, 'no-such.sqfs'), offset: 0 }, arch: 'amd64', epoch: 0 });
    expect(bad.ok ? undefined : [bad.error.reason, bad.error.message.startsWith(`could not write ${out}: ENOENT`)]).toEqual(['system-error', true]);
    const arch = await writeSif({ output: out, squashfs: { file: sif, offset: 0 }, arch: 'sparc64', epoch: 0 });
    expect(arch.ok ? undefined : arch.error.message).toBe(`${out}: SIF has no code for the architecture 'sparc64'`);
    expect(readFileSync(out).equals(before)).toBe(true);
    expect(readdirSync(dir)).toEqual(['img.sif']);
  });
});

import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { buildImage, busyboxLayer, pushImage, tarLayer } from '../helpers/images.js';
import { startRegistry } from '../helpers/registry.js';
import type { Rig } from '../helpers/rig.js';
import { chownTree, cliAsUserArgs, createRangedTestUser, createTestUser, makeUserProject, runProcess, userEnv, type Ran, type TestUser } from '../helpers/test-user.js';

/**
 * Sources other than registry images, built by a user without a /etc/subuid range (single-id mode,
 * src/runtime/user-namespace.ts): a local folder, a squashfs and an ext3 image file, an
 * oci-archive, and a step pulled from a remote step cache. Every owner other than 0 is stored as 0,
 * and one warning per source (or pulled step) counts them, as for registry layers. Image files
 * are also checked in subuid mode (a user with a range), where there is no loop device either. The
 * test, as root, makes both users (and the range) and removes them afterwards.
 */
let user: TestUser;
/** A user with a /etc/subuid range (subuid mode), for image files there. */
let ranged: TestUser;
const SUBSTART = 2_000_000_000 + (process.pid % 1000) * 65_536;
const rigs: Rig[] = [];

beforeAll(() => {
  user = createTestUser('orchsx');
  ranged = createRangedTestUser('orchsy', SUBSTART);
});
afterAll(() => {
  for (const r of rigs) r.cleanup();
  user.remove();
  ranged.remove();
});

/** A project owned by `owner` (the single-id user by default): the busybox tree in ./rootfs, `files`, a HOME. */
async function makeProject(files: Readonly<Record<string, string>>, owner: TestUser = user): Promise<Rig> {
  const rig = await makeUserProject('orchestrator-single-id-', owner, files);
  rigs.push(rig);
  return rig;
}

/** The built CLI as `who` (setpriv; the single-id user by default), in the rig. */
function asUser(rig: Rig, argv: readonly string[], who: TestUser = user): Promise<Ran> {
  return runProcess('setpriv', cliAsUserArgs(who, argv), rig.dir, userEnv(rig.path('home')));
}

function warningsOf(r: Ran): string[] {
  return r.stderr.split('\n').filter((l) => l.includes('warning:'));
}

/** `unsquashfs -lln` of the .simg after its 31-byte launch line. */
function listing(image: string): string {
  return execFileSync('unsquashfs', ['-o', '31', '-lln', image], { encoding: 'utf8' });
}

/** Owners of the busybox tree that are not the user's: a folder and a file of 1234, a file of root's group. */
function giveOtherOwners(rootfs: string): void {
  // Readable by the user: a folder it cannot list cannot be a source at all.
  mkdirSync(join(rootfs, 'home/u'));
  chmodSync(join(rootfs, 'home/u'), 0o775);
  writeFileSync(join(rootfs, 'home/u/notes.txt'), 'notes\n');
  chownSync(join(rootfs, 'home/u'), 1234, 1234);
  chownSync(join(rootfs, 'home/u/notes.txt'), 1234, 1234);
  writeFileSync(join(rootfs, 'etc/shadow-ish'), 'x\n');
  chownSync(join(rootfs, 'etc/shadow-ish'), user.uid, 0);
}

const OWNERS_WARNING = (source: string, n: number): string => `box: warning: ${source}: ${n} file${n === 1 ? '' : 's'} owned by ids other than 0 stored as owned by 0 (single-id mode: only id 0 exists)`;

describe('single-id mode: local sources', () => {
  it('a local folder with files of other owners: stored as 0 (sandbox and .simg), one warning that counts them, said once', async () => {
    const rig = await makeProject({
      'orchestrator.yaml': 'version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n  dir:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n',
      'app.def': '%post\n    ls -ln /home/u > /owners.txt\n',
    });
    giveOtherOwners(rig.path('rootfs'));
    const r = await asUser(rig, ['up', '--progress', 'plain', '-j', '1', 'box', 'dir']);
    expect(r.stderr.split('\n').filter((l) => !l.includes('warning:') && !l.startsWith('  hint:'))).toEqual(['']);
    expect(r.code).toBe(0);
    expect(warningsOf(r)).toEqual([OWNERS_WARNING(rig.path('rootfs'), 3)]);
    const list = listing(rig.path('build/box.simg'));
    expect(list).toMatch(/^drwxrwxr-x 0\/0 +\d+ \S+ \S+ squashfs-root\/home\/u$/m);
    expect(list).toMatch(/^-rw-r--r-- 0\/0 +6 \S+ \S+ squashfs-root\/home\/u\/notes.txt$/m);
    expect(list).toMatch(/^-rw-r--r-- 0\/0 +2 \S+ \S+ squashfs-root\/etc\/shadow-ish$/m);
    expect(list).not.toMatch(/ 65534\//);
    // %post saw them as 0's too, not as the overflow id.
    expect(execFileSync('unsquashfs', ['-o', '31', '-cat', rig.path('build/box.simg'), 'owners.txt'], { encoding: 'utf8' })).toMatch(/^-rw-r--r-- +1 0 +0 +6 .* notes\.txt$/m);
    // The sandbox: the user's own files (0 in the namespace).
    expect(lstatSync(rig.path('build/dir/home/u/notes.txt')).uid).toBe(user.uid);
    expect(lstatSync(rig.path('build/dir/etc/shadow-ish')).gid).toBe(user.gid);
  }, 120_000);

  it('a squashfs image file with other owners and a device file: extracted, owners 0 and modes kept, both counted', async () => {
    const rig = await makeProject({ 'orchestrator.yaml': 'version: 1\ntargets:\n  box:\n    from: ./base.sqsh\n    recipe: app.def\n    format: squashfs\n', 'app.def': '%post\n    echo hi > /hi.txt\n' });
    giveOtherOwners(rig.path('rootfs'));
    execFileSync('mknod', ['-m', '644', rig.path('rootfs/dev/null'), 'c', '1', '3']);
    chownSync(rig.path('rootfs/bin'), 0, 0);
    execFileSync('mksquashfs', [rig.path('rootfs'), rig.path('base.sqsh'), '-quiet', '-noappend'], { stdio: 'pipe' });
    chownSync(rig.path('base.sqsh'), user.uid, user.gid);
    // The image's root and most entries are the user's host uid, which inside the image is just another id.
    const inImage = execFileSync('unsquashfs', ['-lln', rig.path('base.sqsh')], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => /^[-dlps][-rwxsStT]{9} /.test(l) && !/^\S+ 0\/0 /.test(l)).length;
    const r = await asUser(rig, ['up', '--progress', 'plain']);
    expect(r.code).toBe(0);
    expect(warningsOf(r)).toEqual([
      OWNERS_WARNING(rig.path('base.sqsh'), inImage),
      `box: warning: ${rig.path('base.sqsh')}: 1 device file left out (a user namespace cannot create device files)`,
    ]);
    const list = listing(rig.path('build/box.simg'));
    expect(list.split('\n').filter((l) => /^\S+ [1-9]\d*\/|^\S+ 0\/[1-9]/.test(l))).toEqual([]);
    expect(list).toMatch(/^drwxrwxr-x 0\/0 +\d+ \S+ \S+ squashfs-root\/home\/u$/m);
    expect(list).toMatch(/^drwx------ 0\/0 +\d+ \S+ \S+ squashfs-root\/root$/m);
    expect(list).toMatch(/^drwxrwxrwt 0\/0 +\d+ \S+ \S+ squashfs-root\/tmp$/m);
    expect(list).toMatch(/^-rw-r--r-- 0\/0 +3 \S+ \S+ squashfs-root\/hi.txt$/m);
    expect(list).not.toContain('squashfs-root/dev/null');
  }, 120_000);

  it('an ext3 image file (built by root) with other owners: extracted, owners 0, counted', async () => {
    const rig = await makeProject({ 'orchestrator.yaml': 'version: 1\ntargets:\n  box:\n    from: ./base.img\n    recipe: app.def\n    format: squashfs\n', 'app.def': '%post\n    echo hi > /hi.txt\n' });
    chownTree(rig.path('rootfs'), 0, 0);
    giveOtherOwners(rig.path('rootfs'));
    chownSync(rig.path('rootfs/etc/shadow-ish'), 0, 42);
    execFileSync('mkfs.ext3', ['-q', '-F', '-d', rig.path('rootfs'), rig.path('base.img'), '16M'], { stdio: 'pipe' });
    chownSync(rig.path('base.img'), user.uid, user.gid);
    const r = await asUser(rig, ['up', '--progress', 'plain']);
    expect(r.code).toBe(0);
    expect(warningsOf(r)).toEqual([OWNERS_WARNING(rig.path('base.img'), 3)]);
    const list = listing(rig.path('build/box.simg'));
    expect(list).toMatch(/^drwxrwxr-x 0\/0 +\d+ \S+ \S+ squashfs-root\/home\/u$/m);
    expect(list).toMatch(/^-rw-r--r-- 0\/0 +6 \S+ \S+ squashfs-root\/home\/u\/notes.txt$/m);
    expect(list).not.toContain('lost+found');
  }, 120_000);
});

describe('single-id mode: oci-archive sources and pulled steps', () => {
  it('an oci-archive with files of other owners: stored as 0, one warning that counts them', async () => {
    const owned = await tarLayer([
      { name: 'home', type: 'directory' },
      { name: 'home/user', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
      { name: 'home/user/notes.txt', content: 'notes\n', uid: 1000, gid: 1000 },
    ]);
    const image = buildImage([await busyboxLayer(), owned]);
    const rig = await makeProject({ 'orchestrator.yaml': 'version: 1\ntargets:\n  box:\n    from: oci-archive:./base.tar\n    recipe: app.def\n    format: squashfs\n', 'app.def': '%post\n    echo hi > /hi.txt\n' });
    const layout = rig.path('layout');
    mkdirSync(join(layout, 'blobs/sha256'), { recursive: true });
    const blob = (digest: string, bytes: Buffer): void => writeFileSync(join(layout, 'blobs/sha256', digest.slice('sha256:'.length)), bytes);
    for (const l of image.layers) blob(l.digest, l.gz);
    blob(image.configDigest, image.config);
    blob(image.manifestDigest, image.manifest);
    writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: image.mediaType, digest: image.manifestDigest, size: image.manifest.length }] }));
    execFileSync('tar', ['-cf', rig.path('base.tar'), '-C', layout, ...readdirSync(layout)]);
    chownSync(rig.path('base.tar'), user.uid, user.gid);
    const r = await asUser(rig, ['up', '--progress', 'plain']);
    expect(r.code).toBe(0);
    expect(warningsOf(r)).toEqual([OWNERS_WARNING(`oci-archive:${rig.path('base.tar')}`, 2)]);
    const list = listing(rig.path('build/box.simg'));
    expect(list).toMatch(/^-rw-r--r-- 0\/0 +6 \S+ \S+ squashfs-root\/home\/user\/notes.txt$/m);
  }, 120_000);

  it('a step pulled from a remote step cache with files of other owners: stored as 0, one warning naming the step', async () => {
    const registry = await startRegistry();
    try {
      const from = `docker://${registry.host}/tests/base:1`;
      await pushImage(`${registry.host}/tests/base:1`, buildImage([await busyboxLayer()]));
      const files = {
        'orchestrator.yaml': `version: 1\ntargets:\n  box:\n    from: ${from}\n    recipe: app.def\n    format: squashfs\n`,
        'app.def': '%post\n    touch /u1000 && chown 1000:1000 /u1000\n',
      };
      // Root builds the step (owner 1000 kept) and pushes it.
      const root = await makeProject(files);
      const pushed = await runProcess(process.execPath, ['--', BIN, 'up', '--progress', 'plain', '--cache-to', `${registry.host}/tests/cache`], root.dir, {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        HOME: root.path('home'),
        ORCHESTRATOR_CACHE: root.path('cache'),
        NO_COLOR: '1',
      });
      expect(pushed.stderr).toBe('');
      expect(pushed.code).toBe(0);
      const rig = await makeProject(files);
      const r = await asUser(rig, ['up', '--progress', 'plain', '--cache-from', `${registry.host}/tests/cache`]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`box: %post from remote cache ${registry.host}/tests/cache`);
      expect(warningsOf(r)).toEqual([OWNERS_WARNING(`%post pulled from ${registry.host}/tests/cache`, 1)]);
      expect(listing(rig.path('build/box.simg'))).toMatch(/^-rw-r--r-- 0\/0 +0 \S+ \S+ squashfs-root\/u1000$/m);
    } finally {
      await registry.stop();
    }
  }, 180_000);
});

describe('subuid mode: image files', () => {
  it('a squashfs and an ext3 image file: extracted with the ids the namespace maps, above 65535 stored as 0, device files left out and counted', async () => {
    const rig = await makeProject(
      {
        'orchestrator.yaml': 'version: 1\ntargets:\n  sq:\n    from: ./base.sqsh\n    recipe: app.def\n    format: squashfs\n  ext:\n    from: ./base.img\n    recipe: app.def\n    format: squashfs\n',
        'app.def': '%post\n    echo hi > /hi.txt\n',
      },
      ranged,
    );
    chownTree(rig.path('rootfs'), 0, 0);
    giveOtherOwners(rig.path('rootfs'));
    chownSync(rig.path('rootfs/etc/shadow-ish'), 200_000, 200_000);
    execFileSync('mknod', ['-m', '644', rig.path('rootfs/dev/null'), 'c', '1', '3']);
    execFileSync('mksquashfs', [rig.path('rootfs'), rig.path('base.sqsh'), '-quiet', '-noappend'], { stdio: 'pipe' });
    execFileSync('mkfs.ext3', ['-q', '-F', '-d', rig.path('rootfs'), rig.path('base.img'), '16M'], { stdio: 'pipe' });
    chownSync(rig.path('base.sqsh'), ranged.uid, ranged.gid);
    chownSync(rig.path('base.img'), ranged.uid, ranged.gid);
    const r = await asUser(rig, ['up', '--progress', 'plain', '-j', '1'], ranged);
    expect(r.code).toBe(0);
    expect(warningsOf(r)).toEqual([
      `sq: warning: ${rig.path('base.sqsh')}: 1 device file left out (a user namespace cannot create device files)`,
      `ext: warning: ${rig.path('base.img')}: 1 device file left out (a user namespace cannot create device files)`,
    ]);
    for (const t of ['sq', 'ext']) {
      const list = listing(rig.path(`build/${t}.simg`));
      expect(list).toMatch(/^drwxrwxr-x 1234\/1234 +\d+ \S+ \S+ squashfs-root\/home\/u$/m);
      expect(list).toMatch(/^-rw-r--r-- 1234\/1234 +6 \S+ \S+ squashfs-root\/home\/u\/notes.txt$/m);
      expect(list).toMatch(/^-rw-r--r-- 0\/0 +2 \S+ \S+ squashfs-root\/etc\/shadow-ish$/m);
      expect(list).not.toContain('squashfs-root/dev/null');
    }
  }, 120_000);
});

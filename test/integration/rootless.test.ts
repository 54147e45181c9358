import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, REPO_ROOT } from '../helpers/cli.js';
import { buildImage, busyboxLayer, pushImage, tarLayer } from '../helpers/images.js';
import { buildLayer } from '../helpers/layers.js';
import { startRegistry } from '../helpers/registry.js';
import { Rig } from '../helpers/rig.js';
import { cliAsUserArgs, createRangedTestUser, createTestUser, makeUserProject, runProcess, userEnv, type Ran, type TestUser } from '../helpers/test-user.js';

/**
 * Builds as users that are not root (src/runtime/user-namespace.ts): one user with /etc/subuid and
 * /etc/subgid ranges (subuid mode), one without (single-id mode). The test, as root, makes both
 * users and their range lines, and removes them afterwards.
 */
let withRange: TestUser;
let without: TestUser;
/** withRange's first subordinate id: container id N (N >= 1) is SUBSTART + N - 1 on the host. */
const SUBSTART = 1_000_000_000 + (process.pid % 10_000) * 65_536;
const rigs: Rig[] = [];

/** The processes (pid and executable) of `uid` or of withRange's subordinate ids. */
function processesOf(uid: number): string[] {
    const left: string[] = [];
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      let status: string;
      try {
        status = readFileSync(`/proc/${pid}/status`, 'utf8');
      } catch {
        continue;
      }
      const owner = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
      if (owner === uid || (owner >= SUBSTART && owner < SUBSTART + 65536)) {
        let exe = '?';
        try {
          exe = readlinkSync(`/proc/${pid}/exe`);
        } catch {
          // gone
        }
        left.push(`${pid} ${exe}`);
      }
    }
  return left;
}

const FULL_RECIPE = [
  '%setup',
  '    touch "$SINGULARITY_ROOTFS/from-setup"',
  '%files',
  '    data.txt /opt/data.txt',
  '%post',
  '    echo post >> /post-ran',
  '    touch /u1000 && chown 1000:1000 /u1000',
  '    touch /suid && chmod 4755 /suid',
  '    rm /root-only.txt',
  '%environment',
  '    export FROM_RECIPE=yes',
  '%runscript',
  '    echo "run one"',
  '%startscript',
  '    echo started',
  '%test',
  '    echo "test section ran as $(id -u)"',
  '%labels',
  '    Owner tests',
  '%help',
  '    Helps.',
  '',
].join('\n');

/** A project owned by `user`: the busybox tree as a local source, the recipe, a cache and a HOME. */
async function makeProject(user: { uid: number; gid: number }, files: Readonly<Record<string, string>>): Promise<Rig> {
  const rig = await makeUserProject('orchestrator-rootless-', user, { 'data.txt': 'data\n', ...files });
  rigs.push(rig);
  return rig;
}

function envFor(rig: Rig, extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  return userEnv(rig.path('home'), extra);
}

/** The built CLI as `user` (setpriv), in the rig; the prefix runs first (as root). */
function asUser(user: TestUser, rig: Rig, argv: readonly string[], extra: Readonly<Record<string, string>> = {}): Promise<Ran> {
  return runProcess('setpriv', cliAsUserArgs(user, argv), rig.dir, envFor(rig, extra));
}

interface SlowBuild {
  readonly project: Rig;
  readonly child: ChildProcess;
  /** What the CLI wrote to stdout so far. */
  readonly stdout: () => string;
  /** Its exit code, once it has closed. */
  readonly closed: Promise<number | null>;
}

/**
 * `up --progress plain` as `user`, not awaited, of a project whose %post says `sleeping-now` and
 * sleeps for 300 s: resolves once the step has said it, or the CLI has ended before that (so that
 * a test fails on what it shows instead of waiting for its timeout).
 */
async function startSlowPostAs(user: TestUser): Promise<SlowBuild> {
  const project = await makeProject(user, {
    'orchestrator.yaml': 'version: 1\ntargets:\n  slow:\n    from: ./rootfs\n    recipe: slow.def\n    format: sandbox\n',
    'slow.def': '%post\n    echo sleeping-now\n    sleep 300\n',
  });
  const child = spawn('setpriv', cliAsUserArgs(user, ['up', '--progress', 'plain']), { cwd: project.dir, env: envFor(project), stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.resume();
  const closed = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  let out = '';
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('| sleeping-now')) resolve();
    });
    void closed.then(() => resolve());
  });
  return { project, child, stdout: () => out, closed };
}

function unsquashListing(image: string): string {
  return execFileSync('unsquashfs', ['-o', '31', '-lln', image], { encoding: 'utf8' });
}

/** `debugfs -R 'stat PATH'` of the ext3 file system after the 31-byte launch line. */
function ext3Stat(image: string, path: string): string {
  return execFileSync('debugfs', ['-R', `stat ${path}`, `${image}?offset=31`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

beforeAll(() => {
  withRange = createRangedTestUser('orchsu', SUBSTART);
  without = createTestUser('orchsi');
});
afterAll(() => {
  for (const r of rigs) r.cleanup();
  withRange.remove();
  without.remove();
});

const MANIFEST =
  'version: 1\ntargets:\n' +
  '  box:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n' +
  '  sq:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n' +
  '  ext:\n    from: ./rootfs\n    recipe: app.def\n    format: ext3\n';

describe('subuid mode (a /etc/subuid range)', () => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await makeProject(withRange, { 'orchestrator.yaml': MANIFEST, 'app.def': FULL_RECIPE });
  });

  it('builds every section as sandbox, squashfs and ext3, with the container ids inside each', async () => {
    const r = await asUser(withRange, rig, ['up', '--progress', 'plain', '-j', '1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('building without root in a user namespace (subuid mode: container ids map to your subordinate ids)');
    expect(r.stdout).toContain('test section ran as 0');
    expect(r.stdout).toMatch(/built 3, fresh 0, failed 0/);

    // The sandbox: files as Apptainer's --fakeroot --sandbox leaves them, owned by the mapped ids.
    const box = rig.path('build/box');
    expect(lstatSync(join(box, 'u1000')).uid).toBe(SUBSTART + 999);
    expect(lstatSync(join(box, 'u1000')).gid).toBe(SUBSTART + 999);
    expect(lstatSync(join(box, 'suid')).uid).toBe(withRange.uid);
    expect(lstatSync(join(box, 'suid')).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(join(box, 'from-setup')).uid).toBe(withRange.uid);
    expect(readFileSync(join(box, 'opt/data.txt'), 'utf8')).toBe('data\n');
    expect(existsSync(join(box, 'root-only.txt'))).toBe(false);
    expect(readFileSync(join(box, '.singularity.d/runscript'), 'utf8')).toContain('echo "run one"');
    expect(readFileSync(join(box, '.singularity.d/startscript'), 'utf8')).toContain('echo started');
    expect(readFileSync(join(box, '.singularity.d/test'), 'utf8')).toContain('test section ran');
    expect(readFileSync(join(box, '.singularity.d/env/90-environment.sh'), 'utf8')).toContain('export FROM_RECIPE=yes');
    expect(JSON.parse(readFileSync(join(box, '.singularity.d/labels.json'), 'utf8'))).toMatchObject({ Owner: 'tests' });
    expect(readFileSync(join(box, '.singularity.d/runscript.help'), 'utf8')).toContain('Helps.');

    // squashfs: the ids as the container sees them.
    const list = unsquashListing(rig.path('build/sq.simg'));
    expect(list).toMatch(/^-rw-r--r-- 1000\/1000 +0 \S+ \S+ squashfs-root\/u1000$/m);
    expect(list).toMatch(/^-rwsr-xr-x 0\/0 +0 \S+ \S+ squashfs-root\/suid$/m);
    expect(list).toMatch(/^-rw-r--r-- 0\/0 +0 \S+ \S+ squashfs-root\/from-setup$/m);
    expect(list).not.toContain('root-only.txt');

    // ext3: likewise.
    const u = ext3Stat(rig.path('build/ext.img'), '/u1000');
    expect(u).toMatch(/User: +1000 +Group: +1000/);
    const s = ext3Stat(rig.path('build/ext.img'), '/suid');
    expect(s).toMatch(/User: +0 +Group: +0/);
    expect(s).toMatch(/Mode: +04755/);
  }, 240_000);

  it('a %runscript edit reruns no %post', async () => {
    writeFileSync(rig.path('app.def'), FULL_RECIPE.replace('echo "run one"', 'echo "run two"'));
    const r = await asUser(withRange, rig, ['up', '--progress', 'plain', '-j', '1', 'box']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('%post running');
    expect(r.stdout).toMatch(/box: built in .* \(\d+ steps? run, [1-9]\d* from cache\)/);
    expect(readFileSync(rig.path('build/box/post-ran'), 'utf8')).toBe('post\n');
    expect(readFileSync(rig.path('build/box/.singularity.d/runscript'), 'utf8')).toContain('echo "run two"');
  }, 120_000);

  it('plan shows the mode, in text and JSON', async () => {
    const text = await asUser(withRange, rig, ['plan']);
    expect(text.stdout).toContain('\nbuild mode: subuid\n');
    const json = await asUser(withRange, rig, ['plan', '--json']);
    expect(JSON.parse(json.stdout).build).toEqual({ mode: 'subuid' });
  }, 60_000);

  it("with SOURCE_DATE_EPOCH the .simg is byte-identical to root's from the same target", async () => {
    const files = { 'orchestrator.yaml': 'version: 1\ntargets:\n  sq:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n', 'app.def': FULL_RECIPE };
    const mine = await makeProject(withRange, files);
    const roots = await makeProject({ uid: 0, gid: 0 }, files);
    const epoch = { SOURCE_DATE_EPOCH: '1700000000' };
    const a = await asUser(withRange, mine, ['up', '--progress', 'plain'], epoch);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    const b = await runProcess(process.execPath, ['--', BIN, 'up', '--progress', 'plain'], roots.dir, envFor(roots, epoch));
    expect(b.stderr).toBe('');
    expect(b.code).toBe(0);
    const x = readFileSync(mine.path('build/sq.simg'));
    const y = readFileSync(roots.path('build/sq.simg'));
    expect(x.length).toBe(y.length);
    expect(x.equals(y)).toBe(true);
  }, 240_000);

  it('SIGINT in the middle of %post leaves no mount, no temp folder and no process', async () => {
    const { project: slow, child, stdout, closed } = await startSlowPostAs(withRange);
    expect(stdout()).toContain('| sleeping-now');
    // Once: a second Ctrl-C means "exit now" (src/cli/main.ts).
    child.kill('SIGINT');
    expect(await closed).toBe(130);
    // No mount anywhere under the project or its cache, on the host.
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(slow.dir);
    // No temp folder: the store's tmp/ is empty and no step folder is left in the project.
    const tmp = join(slow.path('home'), '.cache/orchestrator/tmp');
    expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
    expect(existsSync(slow.path('build/slow'))).toBe(false);
    // No process of the user's or its subordinate ids is left (the sleep ran as container root).
    expect(processesOf(withRange.uid)).toEqual([]);
  }, 120_000);

  it('SIGKILL of the outer process (it can forward nothing): the command inside stops as on SIGTERM and cleans up', async () => {
    const { project: slow, child, stdout } = await startSlowPostAs(withRange);
    expect(stdout()).toContain('| sleeping-now');
    child.kill('SIGKILL');
    // The inner command notices within a second or so, then stops its step (SIGTERM, SIGKILL after a delay).
    for (let i = 0; i < 120 && processesOf(withRange.uid).length > 0; i++) await new Promise((r) => setTimeout(r, 250));
    expect(processesOf(withRange.uid)).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(slow.dir);
    const tmp = join(slow.path('home'), '.cache/orchestrator/tmp');
    expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
  }, 120_000);
});

describe('the store without root', () => {
  it('clean and cache prune remove what a namespace build wrote (files of subordinate ids), without root', async () => {
    const rig = await makeProject(withRange, {
      'orchestrator.yaml': 'version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n',
      'app.def': '%post\n    mkdir /d && touch /d/f && chown -R 1000:1000 /d && chmod 700 /d\n',
    });
    expect((await asUser(withRange, rig, ['up', '--progress', 'plain'])).code).toBe(0);
    expect(lstatSync(rig.path('build/box/d')).uid).toBe(SUBSTART + 999);
    const cache = join(rig.path('home'), '.cache/orchestrator');
    expect(readdirSync(join(cache, 'snapshots')).length).toBeGreaterThan(0);
    const c = await asUser(withRange, rig, ['clean']);
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);
    expect(existsSync(rig.path('build/box'))).toBe(false);
    const p = await asUser(withRange, rig, ['cache', 'prune']);
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    expect(readdirSync(join(cache, 'snapshots'))).toEqual([]);
  }, 120_000);

  it("a cache folder shared by several users: each builds in its own area, and a planted area is refused", async () => {
    const shared = await Rig.create('orchestrator-shared-cache-');
    rigs.push(shared);
    chmodSync(shared.dir, 0o1777);
    const files = { 'orchestrator.yaml': 'version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n', 'app.def': '%post\n    echo hi > /hi\n' };
    const a = await makeProject(withRange, files);
    const r = await asUser(withRange, a, ['up', '--progress', 'plain'], { ORCHESTRATOR_CACHE: shared.dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const area = lstatSync(join(shared.dir, 'users', String(withRange.uid)));
    expect(area.uid).toBe(withRange.uid);
    expect(area.mode & 0o777).toBe(0o700);
    expect(lstatSync(join(shared.dir, 'users')).mode & 0o7777).toBe(0o1777);
    expect(readdirSync(join(shared.dir, 'users', String(withRange.uid), 'snapshots')).length).toBeGreaterThan(0);
    // Another user makes `without`'s area first, to fill it with steps of its own: refused.
    const mine = join(shared.dir, 'users', String(without.uid));
    execFileSync('setpriv', [`--reuid=${withRange.uid}`, `--regid=${withRange.gid}`, '--clear-groups', 'mkdir', '-m', '0777', mine]);
    const b = await makeProject(without, files);
    const x = await asUser(without, b, ['up', '--progress', 'plain'], { ORCHESTRATOR_CACHE: shared.dir });
    expect(x.stderr).toBe(
      `error: the cache folder ${shared.dir} belongs to another user, and this user's area in it (${mine}) is not this user's alone\n` +
        `  hint: remove ${mine} (as its owner or root) so that it is made again, or give --cache-dir a folder of your own\n`,
    );
    expect(x.code).toBe(1);
    expect(existsSync(b.path('build/box'))).toBe(false);
  }, 120_000);
});

describe('single-id mode (no range)', () => {
  it('the busybox recipe builds (a device file of the source: kept in the .simg, left out of the sandbox); the mode is said first', async () => {
    const rig = await makeProject(without, {
      'orchestrator.yaml':
        'version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n' + '  dir:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n',
      'app.def': '%post\n    echo hi > /hi.txt\n    rm /root-only.txt\n%runscript\n    echo run\n',
    });
    execFileSync('mknod', ['-m', '666', rig.path('rootfs/dev/null'), 'c', '1', '3']);
    chownSync(rig.path('rootfs/dev/null'), without.uid, without.gid);
    const r = await asUser(without, rig, ['up', '--progress', 'plain', '-j', '1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('building without root in a user namespace (single-id mode: only id 0 exists; chown to other ids fails)');
    const list = unsquashListing(rig.path('build/box.simg'));
    expect(list).toMatch(/^-rw-r--r-- 0\/0 +3 \S+ \S+ squashfs-root\/hi.txt$/m);
    expect(list).toMatch(/^crw-rw-rw- 0\/0 +1, +3 \S+ \S+ squashfs-root\/dev\/null$/m);
    expect(list).not.toContain('root-only.txt');
    expect(readFileSync(rig.path('build/dir/hi.txt'), 'utf8')).toBe('hi\n');
    expect(lstatSync(rig.path('build/dir/hi.txt')).uid).toBe(without.uid);
    expect(existsSync(rig.path('build/dir/dev/null'))).toBe(false);
  }, 120_000);

  it('a registry image with files of other owners: stored as owned by 0, with one warning that counts them', async () => {
    const registry = await startRegistry();
    try {
      const owned = await tarLayer([
        { name: 'home', type: 'directory' },
        { name: 'home/user', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
        { name: 'home/user/notes.txt', content: 'notes\n', uid: 1000, gid: 1000 },
        { name: 'var', type: 'directory', uid: 0, gid: 0 },
        { name: 'var/mail', content: 'mail\n', uid: 0, gid: 8 },
      ]);
      await pushImage(`${registry.host}/tests/owners:1`, buildImage([await busyboxLayer(), owned]));
      const rig = await makeProject(without, {
        'orchestrator.yaml': `version: 1\ntargets:\n  box:\n    from: docker://${registry.host}/tests/owners:1\n    recipe: app.def\n    format: squashfs\n`,
        'app.def': '%post\n    echo hi > /hi.txt\n',
      });
      const r = await asUser(without, rig, ['up', '--progress', 'plain']);
      expect(r.code).toBe(0);
      const warnings = r.stderr.split('\n').filter((l) => l.includes('warning:'));
      expect(warnings).toEqual([`box: warning: docker://${registry.host}/tests/owners:1: 3 files owned by ids other than 0 stored as owned by 0 (single-id mode: only id 0 exists)`]);
      const list = unsquashListing(rig.path('build/box.simg'));
      expect(list).toMatch(/^-rw-r--r-- 0\/0 +6 \S+ \S+ squashfs-root\/home\/user\/notes.txt$/m);
      expect(list).toMatch(/^-rw-r--r-- 0\/0 +5 \S+ \S+ squashfs-root\/var\/mail$/m);
    } finally {
      await registry.stop();
    }
  }, 120_000);

  it('chown to another id in %post fails, and the hint names the mode and the fix', async () => {
    const rig = await makeProject(without, {
      'orchestrator.yaml': 'version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n',
      'app.def': '%post\n    touch /x\n    chown 1000 /x\n',
    });
    const r = await asUser(without, rig, ['up', '--progress', 'plain']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('chown: /x: Invalid argument\n');
    expect(r.stderr).toContain(
      "; this build runs in single-id mode (no /etc/subuid range for you), where only id 0 exists and chown to any other id fails: ask for a range ('usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER') to build in subuid mode, or build as root\n",
    );
  }, 120_000);

  it('--fakeroot without a range is an error naming the missing piece and the fix', async () => {
    const rig = await makeProject(without, { 'orchestrator.yaml': MANIFEST, 'app.def': FULL_RECIPE });
    const r = await asUser(without, rig, ['up', '--fakeroot']);
    expect(r.stderr).toBe(
      `error: --fakeroot needs a range of at least 65536 subordinate ids for ${without.name} in /etc/subuid and /etc/subgid, and there is none\n` +
        `  hint: ask the administrator to add one: 'usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${without.name}' (any free range), or build without --fakeroot (single-id mode)\n`,
    );
    expect(r.code).toBe(1);
    expect(existsSync(rig.path('build'))).toBe(false);
  }, 60_000);

  it('--no-fakeroot as a user that is not root: building needs root, nothing built; --dry-run still works', async () => {
    const rig = await makeProject(without, { 'orchestrator.yaml': MANIFEST, 'app.def': FULL_RECIPE });
    const r = await asUser(without, rig, ['up', '--no-fakeroot']);
    expect(r.stderr).toBe(
      'error: building needs root or a user namespace, and --no-fakeroot forbids the namespace\n' +
        "  hint: run it as root (e.g. 'sudo orchestrator up'), or leave out --no-fakeroot to build in a user namespace\n",
    );
    expect(r.code).toBe(1);
    expect(existsSync(rig.path('build'))).toBe(false);
    const b = await asUser(without, rig, ['build', '--no-fakeroot', 'out.simg', './rootfs']);
    expect(b.code).toBe(1);
    expect(existsSync(rig.path('out.simg'))).toBe(false);
    const d = await asUser(without, rig, ['up', '--progress', 'plain', '--dry-run']);
    expect(d.stderr).toBe('');
    expect(d.stdout).toContain('box: would build: never built');
    expect(d.code).toBe(0);
  }, 60_000);
});

describe('layers in a user namespace', () => {
  it('single-id mode: owners other than 0 are stored as 0 and device files left out, each said once with a count', async () => {
    const layer = await buildLayer([
      { name: 'home/user/notes.txt', content: 'notes\n', mode: 0o600, uid: 1000, gid: 1001 },
      { name: 'home/user/', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
      { name: 'bin/sh', type: 'symlink', linkname: 'busybox', uid: 0, gid: 5 },
      { name: 'bin/busybox', content: 'bb', mode: 0o755 },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/loop0', type: 'block-device', devmajor: 7, devminor: 0, mode: 0o660 },
      { name: 'etc/.wh.gone', content: '' },
    ]);
    const rig = await Rig.create('orchestrator-rootless-layer-');
    rigs.push(rig);
    writeFileSync(rig.path('layer.tar.gz'), layer.blob);
    rig.write({
      'unpack.mjs': [
        `import { unpackLayer, unpackWarnings } from '${join(REPO_ROOT, 'dist/layers/unpack-layer.js')}';`,
        `const r = await unpackLayer({ source: process.argv[2], mediaType: '${layer.mediaType}', destination: process.argv[3], tmpDir: process.argv[4] });`,
        "if (!r.ok) { console.log(JSON.stringify(r.error)); process.exit(1); }",
        "console.log(JSON.stringify({ value: r.value, warnings: unpackWarnings([r.value], 'docker://example/image') }));",
        '',
      ].join('\n'),
    });
    // As root in a namespace that maps 0 only (what single-id mode gives a user).
    const out = execFileSync('unshare', ['--user', '--map-root-user', '--mount', process.execPath, rig.path('unpack.mjs'), rig.path('layer.tar.gz'), rig.path('store/layers/x'), rig.path('store/tmp')], { encoding: 'utf8' });
    const { value, warnings } = JSON.parse(out) as { value: { ownersFolded: number; devicesSkipped: number; whiteouts: number }; warnings: unknown };
    expect(value).toMatchObject({ ownersFolded: 3, devicesSkipped: 2, whiteouts: 1 });
    expect(warnings).toEqual([
      {
        severity: 'warning',
        reason: 'single-id-owners',
        message: 'docker://example/image: 3 files owned by ids other than 0 stored as owned by 0 (single-id mode: only id 0 exists)',
        hint: "ask for a /etc/subuid and /etc/subgid range ('usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER') to keep every owner (subuid mode), or build as root",
      },
      {
        severity: 'warning',
        reason: 'device-files-skipped',
        message: 'docker://example/image: 2 device files left out (a user namespace cannot create device files)',
        hint: "a container's /dev comes from the host at run time; build as root to keep them in the image",
      },
    ]);
    const root = rig.path('store/layers/x');
    expect(lstatSync(join(root, 'home/user/notes.txt')).uid).toBe(0);
    expect(lstatSync(join(root, 'home/user')).uid).toBe(0);
    expect(lstatSync(join(root, 'bin/sh')).gid).toBe(0);
    expect(existsSync(join(root, 'dev/null'))).toBe(false);
    expect(existsSync(join(root, 'dev/loop0'))).toBe(false);
    const wh = lstatSync(join(root, 'etc/gone'));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
  }, 60_000);
});

describe('no user namespaces', () => {
  it('gives the clear error when user.max_user_namespaces is 0', async () => {
    const rig = await makeProject(without, { 'orchestrator.yaml': MANIFEST, 'app.def': FULL_RECIPE });
    // A user namespace of root's (ids 0..65535 mapped as they are) whose limit of nested
    // namespaces is 0: a holder process keeps it, root enters it with nsenter (with every
    // capability there), writes the limit, becomes the test user and runs the CLI, which really
    // finds no namespace to enter.
    const holder = spawn('unshare', ['--user', '--', 'sh', '-c', 'read _'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const holderClosed = new Promise((resolve) => holder.on('close', resolve));
    const mine = readlinkSync('/proc/self/ns/user');
    // Wait until unshare has made the namespace (no timer: each turn yields to the event loop).
    while (readlinkSync(`/proc/${holder.pid}/ns/user`) === mine) await new Promise((r) => setImmediate(r));
    writeFileSync(`/proc/${holder.pid}/uid_map`, '0 0 65536\n');
    writeFileSync(`/proc/${holder.pid}/gid_map`, '0 0 65536\n');
    const script = `echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --reuid=${without.uid} --regid=${without.gid} --clear-groups "$0" -- "$1" up`;
    const r = await runProcess('nsenter', ['-t', String(holder.pid), '-U', '--preserve-credentials', '--', 'sh', '-c', script, process.execPath, BIN], rig.dir, envFor(rig));
    holder.stdin.end('done\n');
    await holderClosed;
    const { stdout, stderr, code } = r;
    expect(stderr).toBe(
      'error: building without root needs a user namespace, and this system allows none (user.max_user_namespaces is 0)\n' +
        "  hint: ask the administrator to allow them: 'sysctl -w user.max_user_namespaces=15000' (and in /etc/sysctl.d/ to keep it), or build as root\n",
    );
    expect(stdout).toBe('');
    expect(code).toBe(1);
    expect(existsSync(rig.path('build'))).toBe(false);
  }, 60_000);
});

/**
 * `Bootstrap: debootstrap` without root: the bootstrap runs as uid 0 of a user namespace made by
 * util-linux `unshare`, as an ordinary user (the namespace the CLI re-executes itself in):
 * - subuid: 0 -> the user, 1..65536 -> the user's /etc/subuid range (newuidmap): mmdebstrap --mode=root;
 * - single-id: 0 -> the user only (`unshare -r`): mmdebstrap --mode=fakechroot.
 * Each runs a real bookworm minbase bootstrap from the host's apt mirror (about 0.5-2 min each).
 * The users and their /etc/subuid and /etc/subgid lines are made here and removed afterwards.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, REPO_ROOT, runCli } from '../helpers/cli.js';
import { createRangedTestUser, createTestUser, type TestUser } from '../helpers/test-user.js';

const DRIVER = join(REPO_ROOT, 'test/helpers/debootstrap-driver.mjs');
/** A subuid range of this file's own (the first id of 65536). */
const SUB = 3_500_000 + (process.pid % 500) * 65_536;

let work: string;
let subUser: TestUser;
let oneUser: TestUser;

/** The driver as `user`, in the namespace `unshareArgs` makes, with a store of its own; its JSON result and its stderr. */
function bootstrapAs(user: TestUser, unshareArgs: readonly string[], storeName: string) {
  const store = join(work, storeName);
  const r = spawnSync(
    'setpriv',
    [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', 'unshare', ...unshareArgs, '--mount', '--', process.execPath, DRIVER, REPO_ROOT, store, 'bookworm'],
    { encoding: 'utf8', cwd: work, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: work }, maxBuffer: 64 << 20 },
  );
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return { code: r.status, stderr: r.stderr, out: last.startsWith('{') ? (JSON.parse(last) as { result: { ok: boolean; value?: { layers: string[] }; error?: unknown }; events: Array<{ type: string; method?: string }>; uidMap: string }) : undefined };
}

beforeAll(() => {
  work = mkdtempSync('/var/tmp/orch-userns-bootstrap-');
  subUser = createRangedTestUser('orchsub', SUB);
  oneUser = createTestUser('orchone');
  // Both users may write the work folder (each has a store of its own in it).
  chownSync(work, 0, 0);
  execFileSync('chmod', ['1777', work]);
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  subUser.remove();
  oneUser.remove();
});

/** What every bootstrapped root has, whoever made it: apt, the image's own absolute links, an empty /dev. */
function expectUsableRoot(root: string): void {
  expect(statSync(join(root, 'usr/bin/apt-get')).isFile()).toBe(true);
  expect(readlinkSync(join(root, 'etc/localtime'))).toBe('/usr/share/zoneinfo/Etc/UTC');
  // No link points at the folder it was made in (fakechroot writes host paths).
  const bad: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isSymbolicLink() && readlinkSync(p).startsWith(work)) bad.push(p);
    }
  };
  walk(root);
  expect(bad).toEqual([]);
  expect(readdirSync(join(root, 'dev'))).toEqual([]);
  expect(readFileSync(join(root, 'etc/apt/sources.list'), 'utf8')).toMatch(/^deb \S+ bookworm main\n$/);
}

describe('Bootstrap: debootstrap in a user namespace', () => {
  it('subuid mode through the CLI: the quick start (apt-get install hello in %post) builds as the user and runs; ids inside are the container ids', async () => {
    // The quick start copied into a project of the user's, built by the CLI's own namespace re-execution.
    const project = join(work, 'quickstart');
    execFileSync('cp', ['-r', join(REPO_ROOT, 'examples/quickstart'), project]);
    execFileSync('mkdir', ['-p', join(project, 'home')]);
    execFileSync('chown', ['-R', `${subUser.uid}:${subUser.gid}`, project]);
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: join(project, 'home'), NO_COLOR: '1' };
    const asUser = (argv: readonly string[]) =>
      spawnSync('setpriv', [`--reuid=${subUser.uid}`, `--regid=${subUser.gid}`, '--clear-groups', process.execPath, '--', BIN, ...argv], { encoding: 'utf8', cwd: project, env, maxBuffer: 64 << 20 });
    const up = asUser(['up', 'dev', 'hello', '--progress', 'plain']);
    expect(up.stderr).toBe('');
    expect(up.status).toBe(0);
    expect(up.stdout.split('\n')[0]).toBe('building without root in a user namespace (subuid mode: container ids map to your subordinate ids)');
    // The sandbox is owned by the mapped host ids: root is the user, the group shadow (42) is SUB + 41.
    const dev = join(project, 'build/dev');
    expect(lstatSync(join(dev, 'etc/passwd'))).toMatchObject({ uid: subUser.uid, gid: subUser.gid });
    const shadow = lstatSync(join(dev, 'etc/shadow'));
    expect([shadow.uid, shadow.gid, shadow.mode & 0o7777]).toEqual([subUser.uid, SUB + 41, 0o640]);
    expect(lstatSync(join(dev, 'usr/bin/chage')).mode & 0o7777).toBe(0o2755);
    expect(lstatSync(join(dev, 'usr/bin/hello')).isFile()).toBe(true);
    // The .simg holds the container's ids, not the host's.
    const listing = execFileSync('unsquashfs', ['-o', '31', '-lln', join(project, 'dist/hello.simg'), '/etc/shadow', '/usr/bin/chage'], { encoding: 'utf8' });
    expect(listing).toMatch(/-rw-r----- 0\/42 .* squashfs-root\/etc\/shadow\n/);
    expect(listing).toMatch(/-rwxr-sr-x 0\/42 .* squashfs-root\/usr\/bin\/chage\n/);
    const run = asUser(['run', 'dist/hello.simg']);
    expect({ code: run.status, stdout: run.stdout }).toEqual({ code: 0, stdout: 'Hello, world!\n' });
    // A second up has nothing to do.
    const again = asUser(['up', 'dev', 'hello', '--progress', 'plain']);
    expect(again.status).toBe(0);
    expect(again.stdout).not.toContain('%post');
  }, 20 * 60_000);

  it('single-id mapping: mmdebstrap --mode=fakechroot makes the same tree, every file owned by 0 (the user)', async () => {
    const r = bootstrapAs(oneUser, ['--user', '--map-root-user'], 'store-single');
    expect(r.out?.result.ok ? r.out.events.map((e) => `${e.type}:${e.method ?? ''}`) : r.stderr).toEqual(['debootstrap-started:mmdebstrap-fakechroot', 'debootstrap-done:']);
    expect(r.out!.uidMap.trim().split(/\s+/).map(Number)).toEqual([0, oneUser.uid, 1]);
    const root = r.out!.result.value!.layers[0]!;
    expectUsableRoot(root);
    const owners = new Set<string>();
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        const st = lstatSync(p);
        owners.add(`${st.uid}:${st.gid}`);
        if (e.isDirectory()) walk(p);
      }
    };
    walk(root);
    expect([...owners]).toEqual([`${oneUser.uid}:${oneUser.gid}`]);
    // Modes survive (fakeroot only pretends the owners).
    expect(lstatSync(join(root, 'etc/shadow')).mode & 0o7777).toBe(0o640);
    expect(lstatSync(join(root, 'usr/bin/chage')).mode & 0o7777).toBe(0o2755);
    const exec = await runCli(['exec', root, '/bin/sh', '-c', 'test -c /dev/null && apt-get --version | head -n 1'], { cwd: work });
    expect(exec).toMatchObject({ code: 0, stderr: '' });
    expect(exec.stdout).toMatch(/^apt \d/);
  }, 15 * 60_000);
});

/**
 * A caller who is not root runs an image file through FUSE (squashfuse, fuse2fs) where /dev/fuse
 * is usable, else through an extraction into their cache. FUSE access is given without changing
 * the host: as root, each run makes a device node of its own (mode 0666), binds it over /dev/fuse
 * in a private mount namespace, then runs the CLI there as a test user (made here, removed after).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEADER, makeBusyboxTree } from '../helpers/busybox-image.js';
import { BIN } from '../helpers/cli.js';
import { createTestUser, type TestUser } from '../helpers/test-user.js';

let work: string;
let user: TestUser;
let simg: string;
let img: string;

function withHeader(src: string, dest: string): void {
  writeFileSync(dest, Buffer.concat([Buffer.from(HEADER), readFileSync(src)]));
  chmodSync(dest, 0o644);
}

/**
 * `orchestrator ARGS` as the test user, in a private mount namespace where /dev/fuse is usable
 * (`fuse`) or left as the host has it (root's only, mode 0600, on this machine). After the CLI
 * exits, the same shell prints the FUSE mounts its namespace still has and the user's processes.
 */
function runAsUser(args: readonly string[], options: { fuse: boolean; env?: Record<string, string> }) {
  const home = join(work, 'home');
  const env = Object.entries({ HOME: home, PATH: '/usr/bin:/bin', ...(options.env ?? {}) }).map(([k, v]) => `${k}=${v}`);
  const script = [
    'set -e',
    options.fuse ? `n=${work}/fuse-node-$$; mknod "$n" c 10 229; chmod 666 "$n"; mount --bind "$n" /dev/fuse; rm -f "$n"` : 'true',
    'set +e',
    `setpriv --reuid=${user.uid} --regid=${user.gid} --clear-groups env -i "$@"`,
    'rc=$?',
    // Processes killed with their session (PDEATHSIG) may still be exiting: give them up to 5 s.
    `i=0; while pgrep -u ${user.uid} >/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done`,
    'echo "--- fuse mounts: $(grep -c " - fuse" /proc/self/mountinfo)"',
    `echo "--- processes: $(pgrep -u ${user.uid} | wc -l)"`,
    'exit $rc',
  ].join('\n');
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...env, process.execPath, '--', BIN, ...args], { encoding: 'utf8', cwd: work });
  const [stdout, after = ''] = r.stdout.split('--- fuse mounts: ');
  return { code: r.status, stdout: stdout!, stderr: r.stderr, after: `fuse mounts: ${after}`.trim() };
}

/** What the container's / is made of, from its first mountinfo line. */
const ROOT_LINE = 'head -n 1 /proc/self/mountinfo';

beforeAll(() => {
  work = mkdtempSync('/var/tmp/orch-fuse-');
  chmodSync(work, 0o755);
  const tree = join(work, 'tree');
  makeBusyboxTree(tree);
  writeFileSync(join(tree, 'etc/greeting'), 'hello from the image\n');
  writeFileSync(join(tree, 'etc/secret'), 'root only\n');
  chmodSync(join(tree, 'etc/secret'), 0o600);
  execFileSync('mksquashfs', [tree, join(work, 'fs.sqfs'), '-noappend', '-quiet', '-no-progress'], { stdio: 'ignore' });
  simg = join(work, 'image.simg');
  withHeader(join(work, 'fs.sqfs'), simg);
  execFileSync('mkfs.ext3', ['-q', '-F', '-d', tree, join(work, 'fs.ext3'), '16M'], { stdio: 'ignore' });
  img = join(work, 'image.img');
  withHeader(join(work, 'fs.ext3'), img);
  user = createTestUser('orchfuse');
  mkdirSync(join(work, 'home'));
  chownSync(join(work, 'home'), user.uid, user.gid);
});

afterAll(() => {
  user.remove();
  rmSync(work, { recursive: true, force: true });
});

const extracted = () => join(work, 'home/.cache/orchestrator/extracted');

describe('non-root exec of an image file', () => {
  it.each([
    ['squashfs', 'squashfuse', () => simg],
    ['ext3', 'fuse2fs', () => img],
  ])('a %s image is mounted through %s when /dev/fuse is usable, and nothing is left after exit', (_format, _helper, image) => {
    rmSync(extracted(), { recursive: true, force: true });
    const r = runAsUser(['exec', image(), 'sh', '-c', `cat /etc/greeting; ${ROOT_LINE}; cat /etc/secret; id -u`], { fuse: true });
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('hello from the image');
    // The overlay's lower is the session's FUSE mount, not an extracted folder.
    expect(lines[1]).toMatch(/ - overlay overlay rw,lowerdir=\/tmp\/orchestrator-session-\d+\/image,/);
    // Modes are checked as with extraction: a root-only file stays unreadable.
    expect(r.stderr).toBe("cat: can't open '/etc/secret': Permission denied\n");
    expect(lines[2]).toBe(String(user.uid));
    expect(r.code).toBe(0);
    expect(existsSync(extracted())).toBe(false);
    // The mount lived in the session's namespace and its helper died with the session.
    expect(r.after).toBe('fuse mounts: 0\n--- processes: 0');
  });

  it("the FUSE helper is not a child of the container's first process (a command that waits for every child would hang)", () => {
    // While `cat` runs, the shell's only child is that cat.
    const r = runAsUser(['exec', simg, 'sh', '-c', 'cat /proc/$$/task/$$/children'], { fuse: true });
    expect([r.stderr, r.code]).toEqual(['', 0]);
    expect(r.stdout.trim().split(/\s+/)).toHaveLength(1);
  });

  it('without a usable /dev/fuse, the image is extracted into the cache as before', () => {
    rmSync(extracted(), { recursive: true, force: true });
    const r = runAsUser(['exec', simg, 'sh', '-c', `cat /etc/greeting; ${ROOT_LINE}`], { fuse: false });
    const lines = r.stdout.split('\n');
    expect([lines[0], r.stderr, r.code]).toEqual(['hello from the image', '', 0]);
    expect(lines[1]).toContain(`lowerdir=${extracted()}/`);
    expect(r.after).toBe('fuse mounts: 0\n--- processes: 0');
  });

  it('ORCHESTRATOR_IMAGE_MOUNT=extract extracts even where /dev/fuse is usable', () => {
    rmSync(extracted(), { recursive: true, force: true });
    const r = runAsUser(['exec', simg, 'sh', '-c', ROOT_LINE], { fuse: true, env: { ORCHESTRATOR_IMAGE_MOUNT: 'extract' } });
    expect([r.stderr, r.code]).toEqual(['', 0]);
    expect(r.stdout).toContain(`lowerdir=${extracted()}/`);
  });

  it('through squashfuse the exit status is kept, / is as read-only as an extracted one, and --writable-tmpfs changes vanish', () => {
    const r = runAsUser(['exec', '--writable-tmpfs', simg, 'sh', '-c', 'touch /new.txt; mkdir -p /tmp/x; echo changed > /etc/greeting; exit 3'], { fuse: true });
    expect([r.stdout, r.code]).toEqual(['', 3]);
    expect(r.stderr).toBe("touch: /new.txt: Permission denied\nsh: can't create /etc/greeting: Permission denied\n");
    const again = runAsUser(['exec', simg, 'cat', '/etc/greeting'], { fuse: true });
    expect([again.stdout, again.code]).toEqual(['hello from the image\n', 0]);
  });
});

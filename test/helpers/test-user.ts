import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { makeBusyboxTree } from './busybox-image.js';
import { BIN } from './cli.js';
import { Rig } from './rig.js';

export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Removes the user (and its group). */
  remove(): void;
}

/** A system user made for one test file with useradd (the tests run as root); remove it afterwards. */
export function createTestUser(prefix: string): TestUser {
  const name = `${prefix}${process.pid % 100000}`.slice(0, 30);
  execFileSync('useradd', ['--system', '--no-create-home', '--user-group', '--shell', '/usr/sbin/nologin', name], { stdio: 'pipe' });
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  return {
    name,
    uid,
    gid,
    remove: () => {
      try {
        execFileSync('userdel', [name], { stdio: 'pipe' });
      } catch {
        // already gone
      }
    },
  };
}

/**
 * Gives `name` the subordinate ids START..START+COUNT-1 in /etc/subuid and /etc/subgid through
 * `usermod`, which locks both files: test files running at once must not lose each other's lines,
 * as a read-modify-write of them would.
 */
export function addSubordinateIds(name: string, start: number, count = 65_536): void {
  const range = `${start}-${start + count - 1}`;
  execFileSync('usermod', ['--add-subuids', range, '--add-subgids', range, name], { stdio: 'pipe' });
}

/** A test user with the subordinate ids START..START+65535 (subuid mode); `remove()` takes them back too. */
export function createRangedTestUser(prefix: string, start: number): TestUser {
  const made = createTestUser(prefix);
  addSubordinateIds(made.name, start);
  return {
    ...made,
    remove: () => {
      removeSubordinateIds(made.name, start);
      made.remove();
    },
  };
}

/** Takes the range back (before `remove()`; userdel alone leaves the lines). */
export function removeSubordinateIds(name: string, start: number, count = 65_536): void {
  const range = `${start}-${start + count - 1}`;
  try {
    execFileSync('usermod', ['--del-subuids', range, '--del-subgids', range, name], { stdio: 'pipe' });
  } catch {
    // the user is gone already
  }
}

/** What a process run by `runProcess` gave. */
export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs cmd (e.g. `setpriv` to act as a test user) in cwd with exactly env; resolves when it ends. */
export function runProcess(cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `chown -R -h UID:GID DIR`: a test tree handed to a test user (or back to root). */
export function chownTree(dir: string, uid: number, gid: number): void {
  execFileSync('chown', ['-R', '-h', `${uid}:${gid}`, dir]);
}

/** setpriv's arguments that run the built CLI with `argv` as `user`. */
export function cliAsUserArgs(user: TestUser, argv: readonly string[]): string[] {
  return [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', process.execPath, '--', BIN, ...argv];
}

/** The environment a test user's CLI runs with: a plain PATH, HOME, no colours, and `extra`. */
export function userEnv(home: string, extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: home, NO_COLOR: '1', ...extra };
}

/** A new project owned by `owner` (a test user): the busybox tree in ./rootfs, `files`, a HOME folder. */
export async function makeUserProject(prefix: string, owner: { readonly uid: number; readonly gid: number }, files: Readonly<Record<string, string>>): Promise<Rig> {
  const rig = await Rig.create(prefix);
  chmodSync(rig.dir, 0o755);
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  mkdirSync(rig.path('home'));
  rig.write(files);
  chownTree(rig.dir, owner.uid, owner.gid);
  return rig;
}

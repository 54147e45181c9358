import { execFileSync } from 'node:child_process';

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

import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { BIN } from '../helpers/cli.js';
import { Rig } from '../helpers/rig.js';
import { createTestUser, type TestUser } from '../helpers/test-user.js';

/**
 * How a command that is not root's enters the build namespace (src/runtime/user-namespace.ts,
 * reexecInNamespace): `unshare` once, no trial run before it, and what `unshare` says when it
 * cannot make the namespace as a diagnostic. A stand-in `unshare` first on PATH logs its
 * arguments and runs the real one, or fails as a host without user namespaces would. The test,
 * as root, makes the user (no /etc/subuid range: single-id mode) and removes it afterwards.
 */
let user: TestUser;
let rig: Rig;

beforeAll(async () => {
  user = createTestUser('orchne');
  rig = await Rig.create('orchestrator-ns-entry-');
  chmodSync(rig.dir, 0o755);
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  mkdirSync(rig.path('home'));
  mkdirSync(rig.path('fake'));
  mkdirSync(rig.path('failing'));
  rig.write({
    'orchestrator.yaml': 'version: 1\ntargets:\n  box:\n    from: ./rootfs\n    recipe: app.def\n    format: squashfs\n',
    'app.def': '%post\n    echo hi > /hi.txt\n',
    // Logs each call's arguments, one line a call, then is the real unshare.
    'fake/unshare': `#!/bin/sh\necho "$*" >> ${rig.path('home/unshare-calls')}\nexec /usr/bin/unshare "$@"\n`,
    'failing/unshare': '#!/bin/sh\necho "unshare: write failed /proc/self/uid_map: Operation not permitted" >&2\nexit 1\n',
  });
  chmodSync(rig.path('fake/unshare'), 0o755);
  chmodSync(rig.path('failing/unshare'), 0o755);
  execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, rig.dir]);
});
afterAll(() => {
  rig.cleanup();
  user.remove();
});

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function asUser(pathFirst: string, argv: readonly string[]): Promise<Ran> {
  const args = [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', process.execPath, '--', BIN, ...argv];
  const env = { PATH: `${rig.path(pathFirst)}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, HOME: rig.path('home'), NO_COLOR: '1' };
  return new Promise((resolve) => {
    const child = spawn('setpriv', args, { cwd: rig.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const SINGLE_ID_ARGS = '--user --mount --map-user=0 --map-group=0 -- /bin/sh -c exec "$@" 2>&3 3>&- sh';

describe('entering the build namespace', () => {
  it('runs unshare once (no trial run), and the command inside has the real stderr', async () => {
    const r = await asUser('fake', ['up', '--progress', 'plain']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const calls = readFileSync(rig.path('home/unshare-calls'), 'utf8').trim().split('\n');
    expect(calls).toEqual([`${SINGLE_ID_ARGS} ${process.execPath} -- ${BIN} up --progress plain`]);
    // A failure inside: its message reaches stderr, as from any command.
    const bad = await asUser('fake', ['up', 'nosuch']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/^error: .*nosuch/m);
  }, 120_000);

  it("when unshare cannot make the namespace: its words as the error, with the hint; nothing built", async () => {
    const r = await asUser('failing', ['up', '--progress', 'plain']);
    expect(r.stderr).toBe(
      'error: cannot enter a user namespace for a build without root: unshare: write failed /proc/self/uid_map: Operation not permitted\n' +
        '  hint: user namespaces may be disabled here: ask the administrator, or build as root\n',
    );
    expect(r.stdout).toBe('');
    expect(r.code).toBe(1);
    const quick = await asUser('failing', ['up', 'box']);
    expect([quick.code, quick.stderr]).toEqual([1, r.stderr]);
  }, 60_000);

  it('plan goes on outside the namespace when there is none', async () => {
    const r = await asUser('failing', ['plan']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('box');
  }, 60_000);
});

import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxTree } from '../helpers/busybox-image.js';
import { BIN } from '../helpers/cli.js';
import { Rig } from '../helpers/rig.js';
import { createTestUser, type TestUser } from '../helpers/test-user.js';

/** Until rootless builds land, `up` and `build` as a user that is not root say so, plainly, with exit 1. */
let rig: Rig;
let user: TestUser;

const NEEDS_ROOT =
  'error: building needs root: build steps mount overlays, keep file owners and run %post as root in the image (rootless builds are not supported yet)\n' +
  "  hint: run it as root (e.g. 'sudo orchestrator up'); 'up --dry-run', and shell/exec/run/test on built images, work without root\n";

function chownTree(dir: string, uid: number, gid: number): void {
  chownSync(dir, uid, gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) chownTree(p, uid, gid);
    else if (!e.isSymbolicLink()) chownSync(p, uid, gid);
  }
}

beforeAll(async () => {
  user = createTestUser('orchnr');
  rig = await Rig.create('orchestrator-needs-root-');
  chmodSync(rig.dir, 0o755);
  mkdirSync(rig.path('rootfs'));
  makeBusyboxTree(rig.path('rootfs'));
  rig.write({
    'orchestrator.yaml': 'version: 1\ntargets:\n  app:\n    from: ./rootfs\n    recipe: app.def\n    format: sandbox\n',
    'app.def': '%post\n    echo hi > /hi.txt\n',
  });
  mkdirSync(rig.path('cache'));
  chownTree(rig.dir, user.uid, user.gid);
});
afterAll(() => {
  rig.cleanup();
  user.remove();
});

/** The built CLI as the test user (setpriv), in the rig. */
function asUser(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: rig.dir, ORCHESTRATOR_CACHE: rig.path('cache'), NO_COLOR: '1' };
  return new Promise((resolve) => {
    execFile('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', process.execPath, BIN, ...argv], { cwd: rig.dir, env }, (e, stdout, stderr) =>
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stdout, stderr }),
    );
  });
}

describe('building as a user that is not root', () => {
  it("up: 'building needs root', exit 1, nothing built", async () => {
    const r = await asUser(['up', '--progress', 'plain']);
    expect(r.stderr).toBe(NEEDS_ROOT);
    expect(r.stdout).toMatch(/app: FAILED\nbuilt 0, fresh 0, failed 1, skipped 0/);
    expect(r.code).toBe(1);
    expect(existsSync(rig.path('build'))).toBe(false);
  }, 60_000);

  it('up --dry-run works: it builds nothing', async () => {
    const r = await asUser(['up', '--progress', 'plain', '--dry-run']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('app: would build: never built');
    expect(r.code).toBe(0);
  }, 60_000);

  it("build: 'building needs root', exit 1, nothing written", async () => {
    const r = await asUser(['build', 'out.simg', './rootfs']);
    expect(r.stderr).toBe(NEEDS_ROOT);
    expect(r.stdout).toBe('');
    expect(r.code).toBe(1);
    expect(existsSync(rig.path('out.simg'))).toBe(false);
  }, 60_000);
});

import { chmodSync, chownSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildTestImages, type TestImages } from '../helpers/busybox-image.js';
import { runCli } from '../helpers/cli.js';
import { createTestUser, type TestUser } from '../helpers/test-user.js';

/**
 * The folder the session tmpfs is mounted on must be the caller's own: another local user who
 * creates `TMP/orchestrator-session-0` first (a folder, or a symlink to one of theirs) must not
 * make exec fail, nor be written through. TMPDIR points at a sticky folder of this test, as /tmp
 * is, so that the squat never touches the /tmp that other sessions on this machine use.
 */
let work: string;
let images: TestImages;
let squatter: TestUser;
let tmp: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orchestrator-sessiondir-'));
  chmodSync(work, 0o755);
  images = buildTestImages(work);
  squatter = createTestUser('orchsq');
});
afterAll(() => {
  squatter.remove();
  rmSync(work, { recursive: true, force: true });
});
beforeEach(() => {
  tmp = mkdtempSync(join(work, 'tmp-'));
  chmodSync(tmp, 0o1777);
});

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, ...extra };
  if (!('XDG_RUNTIME_DIR' in extra)) delete e['XDG_RUNTIME_DIR'];
  return e;
}

/** A folder of the squatter's, writable by all, as a squatter would leave it. */
function squatterDir(path: string): string {
  mkdirSync(path);
  chmodSync(path, 0o777);
  chownSync(path, squatter.uid, squatter.gid);
  return path;
}

describe('the session folder', () => {
  it('without a squatter: TMP/orchestrator-session-UID, mode 0700', async () => {
    const r = await runCli(['exec', images.squashfs, 'echo', 'hi'], { cwd: work, env: env() });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hi\n');
    expect(r.code).toBe(0);
    expect(readdirSync(tmp)).toEqual(['orchestrator-session-0']);
    const st = lstatSync(join(tmp, 'orchestrator-session-0'));
    expect([st.isDirectory(), st.uid, (st.mode & 0o777).toString(8)]).toEqual([true, 0, '700']);
  });

  it("another user's folder at TMP/orchestrator-session-0: exec works and writes nothing there", async () => {
    const squat = squatterDir(join(tmp, 'orchestrator-session-0'));
    for (const image of [images.squashfs, images.sandbox]) {
      const r = await runCli(['exec', image, 'echo', 'hi'], { cwd: work, env: env() });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('hi\n');
      expect(r.code).toBe(0);
    }
    expect(readdirSync(squat)).toEqual([]);
    // The private folder made instead is removed after the session.
    expect(readdirSync(tmp)).toEqual(['orchestrator-session-0']);
  });

  it("a symlink at TMP/orchestrator-session-0 to another user's folder: exec works and writes nothing through it", async () => {
    const target = squatterDir(join(work, `squatter-target-${Date.now()}`));
    symlinkSync(target, join(tmp, 'orchestrator-session-0'));
    lchownSync(join(tmp, 'orchestrator-session-0'), squatter.uid, squatter.gid);
    const r = await runCli(['exec', '--writable-tmpfs', images.squashfs, 'sh', '-c', 'echo hi > /made.txt; cat /made.txt'], { cwd: work, env: env() });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hi\n');
    expect(r.code).toBe(0);
    expect(readdirSync(target)).toEqual([]);
    expect(readdirSync(tmp)).toEqual(['orchestrator-session-0']);
  });

  it("XDG_RUNTIME_DIR is used when it is the caller's own, never when it is another user's", async () => {
    const own = mkdtempSync(join(work, 'xdg-'));
    chmodSync(own, 0o700);
    const r = await runCli(['exec', images.squashfs, 'true'], { cwd: work, env: env({ XDG_RUNTIME_DIR: own }) });
    expect(r.code).toBe(0);
    expect(readdirSync(own)).toEqual(['orchestrator-session']);
    expect(readdirSync(tmp)).toEqual([]);
    const theirs = squatterDir(join(work, `xdg-theirs-${Date.now()}`));
    const t = await runCli(['exec', images.squashfs, 'true'], { cwd: work, env: env({ XDG_RUNTIME_DIR: theirs }) });
    expect(t.code).toBe(0);
    expect(readdirSync(theirs)).toEqual([]);
    expect(readdirSync(tmp)).toEqual(['orchestrator-session-0']);
  });
});

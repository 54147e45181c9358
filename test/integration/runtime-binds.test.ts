import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestImages, type TestImages } from '../helpers/busybox-image.js';
import { runCli } from '../helpers/cli.js';

/** Binds never create a path on the host: not through a bind, not through the image's symlinks. */
let work: string;
let images: TestImages;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orchestrator-binds-'));
  chmodSync(work, 0o755);
  images = buildTestImages(work);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function emptyDir(name: string): string {
  const d = join(work, name);
  mkdirSync(d);
  return d;
}

describe('binds', () => {
  it("-B DIR:/ is refused (exit 2) and creates nothing in DIR", async () => {
    const dir = emptyDir('onto-root');
    const cwd = emptyDir('cwd-root');
    const r = await runCli(['exec', '-B', `${dir}:/`, images.squashfs, 'true'], { cwd });
    expect(r.stderr).toBe(`error: --bind: cannot bind onto / in '${dir}:/': the container's root is the image\n  hint: bind to a folder inside the container, e.g. ${dir}:/mnt\n`);
    expect(r.code).toBe(2);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("-B '' is refused (exit 2)", async () => {
    const r = await runCli(['exec', '-B', '', images.squashfs, 'true'], { cwd: work });
    expect(r.stderr).toBe('error: --bind: empty bind\n  hint: expected SRC[:DST[:ro|rw]]\n');
    expect(r.code).toBe(2);
  });

  it('-B SRC:$HOME/x, with x missing in the host home, is refused (exit 2) and creates nothing in the home', async () => {
    const home = emptyDir('home');
    const src = emptyDir('src');
    const r = await runCli(['exec', '-B', `${src}:${home}/x`, images.squashfs, 'true'], { cwd: work, env: { ...process.env, HOME: home } });
    expect(r.stderr).toBe(
      `error: bind destination ${home}/x is inside ${home}, which is bound from the host's ${home}, and ${home}/x does not exist; it is not created on the host\n` +
        `  hint: create ${home}/x on the host first, or bind to a destination outside ${home}\n`,
    );
    expect(r.code).toBe(2);
    expect(readdirSync(home)).toEqual([]);
    // Where it exists on the host, the bind goes on top of it.
    mkdirSync(join(home, 'x'));
    const ok = await runCli(['exec', '-B', `${src}:${home}/x`, images.squashfs, 'true'], { cwd: work, env: { ...process.env, HOME: home } });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(readdirSync(home)).toEqual(['x']);
  });

  it("a working folder inside a user bind is not created in the bind's host folder: the session starts in home", async () => {
    const data = emptyDir('data');
    const project = emptyDir('project');
    const cwd = join(project, 'sub');
    mkdirSync(cwd);
    const r = await runCli(['exec', '-B', `${data}:${project}`, images.squashfs, 'pwd'], { cwd, env: { ...process.env, HOME: '/' } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('/\n');
    expect(r.code).toBe(0);
    expect(readdirSync(data)).toEqual([]);
  });

  it("a symlink in the image that points out of it is not followed to create a mount point on the host (the starter's check)", async () => {
    const outside = emptyDir('outside');
    const sandbox = join(work, 'sandbox-link');
    cpSync(images.sandbox, sandbox, { recursive: true, verbatimSymlinks: true });
    symlinkSync(outside, join(sandbox, 'link'));
    const src = emptyDir('src-link');
    const r = await runCli(['exec', '-B', `${src}:/link/x`, sandbox, 'true'], { cwd: work });
    expect(r.stderr).toMatch(/^starter: create mount point \S+\/root\/link\/x: it would be created on the host \(inside a bind of a host folder, or through a symlink out of the image\); refusing\n$/);
    expect(r.code).toBe(255);
    expect(readdirSync(outside)).toEqual([]);
  });
});

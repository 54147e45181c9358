import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestImages, type TestImages } from '../helpers/busybox-image.js';
import { BIN, runCli } from '../helpers/cli.js';
import { mountProbe } from '../helpers/mount-probe.js';

let work: string;
let images: TestImages;
let mountsBefore: string;
let loopsBefore: string;
// Only what concerns this file's images: other test files may run containers at the same time.
const { mountinfo, loops } = mountProbe(() => work);

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orchestrator-bad-'));
  chmodSync(work, 0o755);
  images = buildTestImages(work);
  mountsBefore = mountinfo();
  loopsBefore = loops();
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function unchanged(): void {
  expect(mountinfo()).toBe(mountsBefore);
  expect(loops()).toBe(loopsBefore);
}

describe('bad input', () => {
  it('a missing image', async () => {
    const r = await runCli(['exec', join(work, 'missing.simg'), 'true'], { cwd: work });
    expect(r.stderr).toBe(`error: ${join(work, 'missing.simg')}: no such image file or folder\n`);
    expect(r.code).toBe(2);
    unchanged();
  });

  it('a truncated squashfs image', async () => {
    const p = join(work, 'cut.simg');
    cpSync(images.squashfsHeader, p);
    truncateSync(p, 31 + 8192);
    const r = await runCli(['run', p], { cwd: work });
    expect(r.stderr).toMatch(/^error: .*cut\.simg: truncated squashfs image: the superblock says \d+ bytes, the file holds 8192\n {2}hint: the copy or download was cut short; fetch or build the image again\n$/);
    expect(r.code).toBe(2);
    unchanged();
  });

  it('a random file', async () => {
    const p = join(work, 'random.bin');
    writeFileSync(p, Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 7919 + 13) % 256)));
    const r = await runCli(['shell', p], { cwd: work });
    expect(r.stderr).toBe(
      `error: ${p}: not a Singularity image: unrecognized binary data\n  hint: expected a sandbox folder, a squashfs image (.simg), an ext3 image (.img) or a SIF image (.sif)\n`,
    );
    expect(r.code).toBe(2);
    unchanged();
  });

  it('a bind source that does not exist', async () => {
    const r = await runCli(['exec', '-B', '/no/such/dir:/data', images.squashfsHeader, 'true'], { cwd: work });
    expect(r.stderr).toBe("error: bind source /no/such/dir does not exist\n  hint: create it, or fix the path in -B /no/such/dir\n");
    expect(r.code).toBe(2);
    unchanged();
  });

  it('a bad bind option and conflicting modes are usage errors', async () => {
    const r = await runCli(['exec', '-B', '/tmp:/data:rx', images.sandbox, 'true'], { cwd: work });
    expect(r.stderr).toBe("error: --bind: invalid bind option 'rx' in '/tmp:/data:rx'\n  hint: the options are 'ro' and 'rw'\n");
    expect(r.code).toBe(2);
    const m = await runCli(['exec', '--writable', '--read-only', images.sandbox, 'true'], { cwd: work });
    expect(m.stderr).toBe('error: --writable and --read-only cannot be used together\n');
    expect(m.code).toBe(2);
  });

  it("the starter's own failure exits 255 with one line naming the syscall and the path", async () => {
    const copy = join(work, 'sandbox-copy');
    cpSync(images.sandbox, copy, { recursive: true });
    const r = await runCli(['exec', '--writable', '-B', `${work}:/no/such/mountpoint`, copy, 'true'], { cwd: work });
    expect(r.stderr).toMatch(/^starter: mount bind \S+ on \S+\/root\/no\/such\/mountpoint: No such file or directory\n$/);
    expect(r.code).toBe(255);
    unchanged();
  });

  it('a command that does not exist in the container exits 127', async () => {
    const r = await runCli(['exec', images.squashfs, 'no-such-command'], { cwd: work });
    expect(r.stderr).toContain('no-such-command: not found');
    expect(r.code).toBe(127);
    unchanged();
  });
});

describe('killing the CLI mid-run', () => {
  for (const which of ['squashfs', 'ext3'] as const) {
    it(`leaves no mount and no loop device behind (${which})`, async () => {
      const image = which === 'squashfs' ? images.squashfsHeader : images.ext3Header;
      const child = spawn(process.execPath, [BIN, 'exec', image, 'sh', '-c', 'echo ready; exec sleep 30'], { cwd: work, detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolveReady, reject) => {
        child.stdout.on('data', (c: Buffer) => (c.toString().includes('ready') ? resolveReady() : undefined));
        child.on('exit', () => reject(new Error('the CLI exited before the container was ready')));
      });
      expect(loops()).toContain(image);
      const exited = new Promise((r) => child.on('exit', r));
      process.kill(-child.pid!, 'SIGKILL');
      await exited;
      // The session dies with its caller (PR_SET_PDEATHSIG); the kernel frees the loop device
      // when the namespace's last mount goes. Wait for that, up to 10 s.
      for (let i = 0; i < 100 && loops() !== loopsBefore; i++) await new Promise((r) => setTimeout(r, 100));
      unchanged();
    });
  }
});

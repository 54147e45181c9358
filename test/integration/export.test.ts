import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, lstatSync, readlinkSync, mkdirSync, symlinkSync, linkSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exportExt3 } from '../../src/image/export-ext3.js';
import { exportSandbox } from '../../src/image/export-sandbox.js';
import { exportSquashfs, type SquashfsProgress } from '../../src/image/export-squashfs.js';
import { LAUNCH_HEADER } from '../../src/image/launch-header.js';

const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

/** type, mode, owner, size, content digest, link target of every entry under `root`. */
function treeListing(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const p = join(rel, name);
      const st = lstatSync(join(root, p));
      const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : st.isFIFO() ? 'p' : st.isCharacterDevice() ? 'c' : 'b';
      const extra = st.isSymbolicLink() ? readlinkSync(join(root, p)) : st.isFile() ? sha256(join(root, p)).slice(0, 12) : st.isCharacterDevice() ? String(st.rdev) : '';
      out.push(`${kind} ${p} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.isFile() ? st.size : ''} ${extra} n${st.isFile() ? st.nlink : ''}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk('');
  return out;
}

let work: string;
let src: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'orch-export-'));
  src = join(work, 'root');
  mkdirSync(join(src, 'usr/bin'), { recursive: true });
  mkdirSync(join(src, 'tmp'));
  chmodSync(join(src, 'tmp'), 0o1777);
  writeFileSync(join(src, 'usr/bin/tool'), '#!/bin/sh\necho tool\n', { mode: 0o4755 });
  writeFileSync(join(src, 'data.txt'), 'x'.repeat(100_000));
  linkSync(join(src, 'data.txt'), join(src, 'hardlink.txt'));
  symlinkSync('usr/bin/tool', join(src, 'link'));
  execFileSync('mkfifo', [join(src, 'fifo')]);
  execFileSync('mknod', [join(src, 'null'), 'c', '1', '3']);
  execFileSync('chown', ['1234:5678', join(src, 'data.txt')]);
  execFileSync('setfattr', ['-n', 'user.note', '-v', 'kept', join(src, 'data.txt')]);
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

describe('squashfs export', () => {
  it('writes the launch line, then a squashfs that holds the tree exactly', async () => {
    const out = join(work, 'img.simg');
    const r = await exportSquashfs({ source: src, output: out });
    expect(r.ok).toBe(true);
    expect(readFileSync(out).subarray(0, 31).toString()).toBe(LAUNCH_HEADER);
    expect(statSync(out).mode & 0o777).toBe(0o755);
    const x = join(work, 'x');
    execFileSync('unsquashfs', ['-q', '-n', '-o', '31', '-d', x, out]);
    expect(treeListing(x)).toEqual(treeListing(src));
    expect(execFileSync('getfattr', ['--only-values', '-n', 'user.note', join(x, 'data.txt')], { encoding: 'utf8' })).toBe('kept');
  });

  it('is byte-identical for the same tree and epoch, even after times change', async () => {
    const a = join(work, 'a.simg');
    const b = join(work, 'b.simg');
    expect((await exportSquashfs({ source: src, output: a, epoch: 1_700_000_000 })).ok).toBe(true);
    execFileSync('touch', ['-d', '2030-01-01', join(src, 'data.txt'), join(src, 'usr')]);
    expect((await exportSquashfs({ source: src, output: b, epoch: 1_700_000_000 })).ok).toBe(true);
    expect(sha256(a)).toBe(sha256(b));
  });

  it("keeps the tree's file times, clamping (never raising) those after the epoch, as the mounted image shows", async () => {
    const epoch = 1_700_000_000;
    execFileSync('touch', ['-h', '-d', '2020-01-02 03:04:05', join(src, 'usr/bin/tool'), join(src, 'link')]);
    execFileSync('touch', ['-d', '2030-01-01', join(src, 'hardlink.txt')]);
    const out = join(work, 'img.simg');
    expect((await exportSquashfs({ source: src, output: out, epoch })).ok).toBe(true);
    const mnt = join(work, 'mnt');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'squashfs', '-o', 'loop,ro,offset=31', out, mnt]);
    try {
      const seconds = (p: string) => Math.floor(lstatSync(p).mtimeMs / 1000);
      for (const p of ['usr/bin/tool', 'link', 'fifo', 'usr']) expect([p, seconds(join(mnt, p))]).toEqual([p, Math.min(seconds(join(src, p)), epoch)]);
      expect(seconds(join(mnt, 'usr/bin/tool'))).toBe(Math.floor(new Date('2020-01-02T03:04:05').getTime() / 1000));
      expect(seconds(join(mnt, 'link'))).toBe(Math.floor(new Date('2020-01-02T03:04:05').getTime() / 1000));
      expect(seconds(join(mnt, 'data.txt'))).toBe(epoch);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it.each([
    ['orchestrator', 'orchestrator-mksquashfs'],
    ['mksquashfs', 'mksquashfs'],
  ] as const)('fails cleanly and keeps the previous image when the source is missing (%s writer)', async (writer, tool) => {
    const out = join(work, 'img.simg');
    writeFileSync(out, 'previous image');
    const r = await exportSquashfs({ source: join(work, 'nope'), output: out, writer, onProgress: () => undefined });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.reason).toBe('tool-failed');
      expect(r.error.message.split('\n')[0]).toMatch(new RegExp(`^squashfs export of .*nope: ${tool} exited with status 1$`));
      // The tail shown is the writer's messages, never its progress lines.
      expect(r.error.message).not.toContain('{"phase"');
    }
    expect(readFileSync(out, 'utf8')).toBe('previous image');
    expect(readdirSync(work).sort()).toEqual(['img.simg', 'root']);
  });

  it.each([
    ['orchestrator', 'zstd', 19, 65536, 6],
    ['mksquashfs', 'zstd', 19, 65536, 6],
    ['orchestrator', 'xz', 3, 1048576, 4],
    ['mksquashfs', 'gzip', 1, 4096, 1],
  ] as const)('writes with the %s writer, %s level %i and %i-byte blocks, as the superblock says', async (writer, compression, level, blockSize, id) => {
    const out = join(work, 'img.simg');
    expect((await exportSquashfs({ source: src, output: out, writer, compression, level, blockSize })).ok).toBe(true);
    const sb = readFileSync(out).subarray(31, 31 + 96);
    expect([sb.readUInt32LE(12), sb.readUInt16LE(20)]).toEqual([blockSize, id]);
    const x = join(work, 'x');
    execFileSync('unsquashfs', ['-q', '-n', '-o', '31', '-d', x, out]);
    expect(treeListing(x)).toEqual(treeListing(src));
  });

  it('reports progress from our writer: bytes and files, compressed, then reused from the block cache', async () => {
    const cache = join(work, 'cache');
    const seen: SquashfsProgress[][] = [[], []];
    for (const i of [0, 1]) {
      const r = await exportSquashfs({ source: src, output: join(work, `img${i}.simg`), blockCache: cache, onProgress: (p) => seen[i]!.push(p) });
      expect(r.ok).toBe(true);
    }
    const [cold, warm] = seen.map((list) => list.at(-1)!);
    expect(cold!.phase).toBe('done');
    expect(cold!.filesTotal).toBeGreaterThan(0);
    expect([cold!.files, cold!.bytes, cold!.reused]).toEqual([cold!.filesTotal, cold!.bytesTotal, 0]);
    expect(cold!.compressed).toBe(cold!.bytesTotal);
    expect([warm!.compressed, warm!.reused]).toEqual([0, warm!.bytesTotal]);
    expect(sha256(join(work, 'img0.simg'))).toBe(sha256(join(work, 'img1.simg')));
  });

  it.each(['orchestrator', 'mksquashfs'] as const)('on a full disk (%s writer): one clear error, the previous image kept, no temp left', async (writer) => {
    const disk = join(work, 'disk');
    mkdirSync(disk);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', disk]);
    try {
      const big = join(src, 'random.bin');
      writeFileSync(big, randomBytes(1024 * 1024));
      const out = join(disk, 'img.simg');
      writeFileSync(out, 'previous image');
      const r = await exportSquashfs({ source: src, output: out, writer });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.reason).toBe('tool-failed');
        expect(r.error.message).toMatch(/No space left on device/);
      }
      expect(readFileSync(out, 'utf8')).toBe('previous image');
      expect(readdirSync(disk)).toEqual(['img.simg']);
    } finally {
      execFileSync('umount', [disk]);
    }
  });
});

describe('ext3 export', () => {
  it('writes the launch line, then an ext3 file system with the tree', async () => {
    const out = join(work, 'img.img');
    const r = await exportExt3({ source: src, output: out, seed: 'k', epoch: 0 });
    expect(r.ok).toBe(true);
    expect(readFileSync(out).subarray(0, 31).toString()).toBe(LAUNCH_HEADER);
    if (r.ok) expect(r.value.size).toBeGreaterThanOrEqual(10 * 1024 * 1024);
    // The super block magic 0xEF53 at 1024 + 56 bytes into the file system.
    expect(readFileSync(out).readUInt16LE(31 + 1024 + 56)).toBe(0xef53);
    // Mounted by the kernel through a loop device at the offset, read-only.
    const x = join(work, 'x');
    mkdirSync(x);
    execFileSync('mount', ['-t', 'ext3', '-o', 'loop,ro,offset=31', out, x]);
    try {
      expect(treeListing(x).filter((l) => !l.includes('lost+found'))).toEqual(treeListing(src));
      expect(execFileSync('getfattr', ['--only-values', '-n', 'user.note', join(x, 'data.txt')], { encoding: 'utf8' })).toBe('kept');
    } finally {
      execFileSync('umount', [x]);
    }
  });

  it('refuses a size too small for the content, writing nothing', async () => {
    const out = join(work, 'img.img');
    const r = await exportExt3({ source: src, output: out, size: 1000 });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.reason).toBe('ext3-too-small');
    expect(readdirSync(work).sort()).toEqual(['root']);
  });
});

describe('sandbox export', () => {
  it('copies the tree with owners, modes, links, devices and xattrs, replacing the old folder', async () => {
    const out = join(work, 'sandbox');
    mkdirSync(out);
    writeFileSync(join(out, 'stale'), 'old');
    const r = await exportSandbox({ source: src, output: `${out}/` });
    expect(r.ok).toBe(true);
    expect(treeListing(out)).toEqual(treeListing(src));
    expect(execFileSync('getfattr', ['--only-values', '-n', 'user.note', join(out, 'data.txt')], { encoding: 'utf8' })).toBe('kept');
    expect(readdirSync(work).sort()).toEqual(['root', 'sandbox']);
  });
});

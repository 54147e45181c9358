/**
 * orchestrator-mksquashfs --layer: the writer merges the layers itself, as overlayfs merges lower
 * layers. The reference is the kernel: the image written from a read-only overlay mount of the
 * same layers must be the same, byte for byte (so the listing, modes, owners, xattrs, hardlink
 * groups and times are too). Then the listing memo of --stable-layer: the same bytes when read
 * from it, nothing stat'ed in a remembered layer, and a damaged memo is detected and rewritten.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportSquashfs } from '../../src/image/export-squashfs.js';
import { squashfsWriterPath } from '../../src/image/squashfs-writer.js';
import { runWriter, seeded, type Written } from '../helpers/squashfs-tree.js';

const writerPath = squashfsWriterPath();
const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

const write = (args: readonly string[]): Written => runWriter([...args, '--clamp', '2000000000']);

/** Writes the image of a read-only overlay of the layers (top first), mounted by the kernel. */
function writeFromMount(layers: readonly string[], output: string, mountPoint: string, extra: readonly string[] = []): void {
  mkdirSync(mountPoint, { recursive: true });
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${layers.join(':')}`, mountPoint]);
  try {
    write([mountPoint, output, ...extra]);
  } finally {
    execFileSync('umount', [mountPoint]);
  }
}

const layerArgs = (layers: readonly string[], flag = '--layer'): string[] => layers.flatMap((l) => [flag, l]);

function file(path: string, content: string | Buffer, mode = 0o644, mtime = 1_600_000_000): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  chmodSync(path, mode);
  utimesSync(path, mtime, mtime);
}
const dir = (path: string, mode = 0o755): void => {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
};
const whiteout = (path: string): void => {
  mkdirSync(dirname(path), { recursive: true });
  execFileSync('mknod', [path, 'c', '0', '0']);
};
const xattr = (path: string, name: string, value: string): void => {
  execFileSync('setfattr', ['-h', '-n', name, '-v', value, path]);
};

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'orch-sqfs-layers-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Four layers that exercise each rule of the merge (top first: l0 over l1 over l2 over l3). */
function ruleLayers(root: string, prefix: 'trusted.overlay.' | 'user.overlay.'): string[] {
  const [l0, l1, l2, l3] = ['l0', 'l1', 'l2', 'l3'].map((n) => join(root, n)) as [string, string, string, string];
  // l3, the base: folders, files, a symlink, a hardlink pair, a fifo, a device, xattrs, a big folder.
  file(join(l3, 'a/f1'), 'base f1\n');
  file(join(l3, 'a/b/big'), seeded('big', 300_000));
  file(join(l3, 'c/keep'), 'kept?\n');
  xattr(join(l3, 'c/keep'), 'user.note', 'from the base');
  file(join(l3, 'd/x'), 'd/x from the base\n');
  file(join(l3, 'h1'), 'hardlinked\n');
  linkSync(join(l3, 'h1'), join(l3, 'h2'));
  linkSync(join(l3, 'h1'), join(l3, 'h3'));
  symlinkSync('a/f1', join(l3, 's'));
  execFileSync('mkfifo', [join(l3, 'p')]);
  execFileSync('mknod', [join(l3, 'null'), 'c', '1', '3']);
  for (let i = 0; i < 300; i++) file(join(l3, 'many', `entry-${String(i).padStart(3, '0')}`), `n${i}\n`);
  file(join(l3, 'gone/deep/file'), 'in a folder a whiteout removes\n');
  xattr(join(l3, 'a'), 'user.dir', 'base');
  // l2: a whiteout over a file and over a folder, an opaque folder, a replaced file, a folder over
  // a fifo, a file over a folder.
  whiteout(join(l2, 'c/keep'));
  whiteout(join(l2, 'gone'));
  dir(join(l2, 'd'));
  file(join(l2, 'd/y'), 'd/y, opaque folder\n');
  xattr(join(l2, 'd'), `${prefix}opaque`, 'y');
  file(join(l2, 'a/f1'), 'f1 replaced in l2\n', 0o600);
  dir(join(l2, 'p'), 0o711);
  file(join(l2, 'p/inside'), 'a folder where a fifo was\n');
  file(join(l2, 'a/b'), 'a file where a folder was\n');
  // l1: a file where a whiteout was, one name of the hardlink group whited out, the merged
  // folder's attributes and xattrs from the topmost, an overlay mark that is not in the view.
  mkdirSync(join(l1, 'c'), { recursive: true });
  symlinkSync('../a/f1', join(l1, 'c/keep'));
  whiteout(join(l1, 'h2'));
  dir(join(l1, 'a'), 0o700);
  xattr(join(l1, 'a'), 'user.dir', 'l1');
  xattr(join(l1, 'a'), `${prefix}origin`, 'ignored');
  file(join(l1, 'many/entry-150'), 'changed in l1\n');
  whiteout(join(l1, 'many/entry-151'));
  // l0, the top: a new file, a folder over the opaque one (merged down to it, not below).
  file(join(l0, '.singularity.d/runscript'), '#!/bin/sh\necho hi\n', 0o755);
  file(join(l0, 'd/z'), 'd/z on top\n');
  file(join(l0, 'many/entry-300'), 'added on top\n');
  utimesSync(join(l0, 'd'), 1_650_000_000, 1_650_000_000);
  return [l0, l1, l2, l3];
}

describe('orchestrator-mksquashfs --layer: the merge equals the kernel overlay', () => {
  it('each rule (whiteouts, opaque folders, replaced types, hardlink groups, attributes of the topmost): the same bytes as the mounted view', () => {
    const layers = ruleLayers(join(work, 'rules'), 'trusted.overlay.');
    writeFromMount(layers, join(work, 'rules-kernel.sqfs'), join(work, 'mnt-rules'));
    const r = write([...layerArgs(layers), join(work, 'rules-merged.sqfs')]);
    expect(sha(join(work, 'rules-merged.sqfs'))).toBe(sha(join(work, 'rules-kernel.sqfs')));
    expect(r.stderr).toBe('');
    // What the merge must show, read back from the image.
    const listing = execFileSync('unsquashfs', ['-lls', '-d', 'R', join(work, 'rules-merged.sqfs')], { encoding: 'utf8' });
    expect(listing).not.toMatch(/R\/gone|R\/d\/x|R\/h2|entry-151/);
    expect(listing).toMatch(/R\/c\/keep -> \.\.\/a\/f1/);
    expect(listing).toMatch(/^-rw------- .* R\/a\/f1$/m);
    expect(listing).toMatch(/^drwx------ .* R\/a$/m);
    expect(listing).toMatch(/R\/d\/y\n/);
    expect(listing).toMatch(/R\/d\/z\n/);
  });

  it('random layer stacks: the same bytes as the mounted view, every seed', () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const root = join(work, `random-${seed}`);
      const layers = randomLayers(root, seed);
      writeFromMount(layers, join(root, 'kernel.sqfs'), join(root, 'mnt'));
      write([...layerArgs(layers), join(root, 'merged.sqfs')]);
      expect(sha(join(root, 'merged.sqfs')), `seed ${seed}`).toBe(sha(join(root, 'kernel.sqfs')));
    }
  });

  it("in a user namespace (userxattr): user.overlay.* marks, the same bytes as the kernel's view there", () => {
    const root = join(work, 'userns');
    const layers = ruleLayers(root, 'user.overlay.');
    const mnt = join(root, 'mnt');
    mkdirSync(mnt);
    const script = [
      'set -e',
      `mount -t overlay overlay -o ro,userxattr,lowerdir=${layers.join(':')} ${mnt}`,
      `${writerPath} ${mnt} ${root}/kernel.sqfs --clamp 2000000000`,
      `umount ${mnt}`,
      `${writerPath} ${layerArgs(layers).join(' ')} ${root}/merged.sqfs --overlay-xattrs user --clamp 2000000000`,
    ].join('\n');
    const r = spawnSync('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(sha(join(root, 'merged.sqfs'))).toBe(sha(join(root, 'kernel.sqfs')));
    expect(execFileSync('unsquashfs', ['-lls', '-d', 'R', join(root, 'merged.sqfs')], { encoding: 'utf8' })).not.toMatch(/R\/d\/x/);
  });

  it('bad arguments: a missing layer, a layer that is a file, a bad --overlay-xattrs, a SOURCE beside layers; nothing written', () => {
    const root = join(work, 'bad-args');
    file(join(root, 'l/f'), 'x\n');
    const out = join(root, 'out.sqfs');
    const run = (args: readonly string[]) => spawnSync(writerPath, args, { encoding: 'utf8' });
    let r = run(['--layer', join(root, 'l'), '--layer', join(root, 'missing'), out]);
    expect([r.status, r.stderr]).toEqual([1, `orchestrator-mksquashfs: error: ${join(root, 'missing')}: No such file or directory\n`]);
    r = run(['--layer', join(root, 'l/f'), out]);
    expect([r.status, r.stderr]).toEqual([1, `orchestrator-mksquashfs: error: ${join(root, 'l/f')}: not a directory\n`]);
    r = run(['--layer', join(root, 'l'), '--overlay-xattrs', 'system', out]);
    expect([r.status, r.stderr]).toEqual([2, "orchestrator-mksquashfs: error: --overlay-xattrs: 'trusted' or 'user', not 'system'\n"]);
    r = run(['--layer', join(root, 'l'), join(root, 'l'), out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^usage: orchestrator-mksquashfs /);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a layer with an overlay redirect (a view it cannot rebuild), naming the file, with status 3', async () => {
    const root = join(work, 'redirect');
    file(join(root, 'l1/moved/f'), 'x\n');
    xattr(join(root, 'l1/moved'), 'trusted.overlay.redirect', '/orig');
    file(join(root, 'l2/orig/f'), 'y\n');
    const r = spawnSync(writerPath, [...layerArgs([join(root, 'l1'), join(root, 'l2')]), join(root, 'out.sqfs')], { encoding: 'utf8' });
    expect(r.status).toBe(3);
    expect(r.stderr).toBe(`orchestrator-mksquashfs: error: ${join(root, 'l1/moved')}: overlay 'redirect' mark: not supported when merging layers (export the mounted view instead)\n`);
    expect(existsSync(join(root, 'out.sqfs'))).toBe(false);
    // exportSquashfs says so with its own reason (the build then writes from the mounted view).
    const exported = await exportSquashfs({ source: root, output: join(root, 'out.simg'), layers: [{ path: join(root, 'l1'), stable: false }, { path: join(root, 'l2'), stable: false }] });
    expect(exported.ok ? undefined : exported.error.reason).toBe('squashfs-layers-unmergeable');
    expect(readdirSync(root).filter((n) => n.includes('out'))).toEqual([]);
  });
});

describe('orchestrator-mksquashfs --stable-layer: the listing memo', () => {
  it('lists a stable layer once, then reads it from the memo: the same bytes, nothing stat\'ed there, no file read', () => {
    const root = join(work, 'memo');
    const [l0, ...stable] = ruleLayers(root, 'trusted.overlay.');
    const cache = join(root, 'cache');
    const args = (out: string): string[] => ['--layer', l0!, ...layerArgs(stable, '--stable-layer'), join(root, out), '--block-cache', cache];
    const first = write(args('1.sqfs'));
    const memos = readdirSync(join(cache, 'listings')).flatMap((d) => readdirSync(join(cache, 'listings', d)));
    expect(memos).toHaveLength(3);
    const second = write(args('2.sqfs'));
    expect(sha(join(root, '2.sqfs'))).toBe(sha(join(root, '1.sqfs')));
    // Only the top layer is listed (its root, .singularity.d, runscript, d, d/z, many, many/entry-300);
    // the files of the stable layers carry their digests: only the top's 3 files are read (made
    // this second, too new for the digest memo).
    expect(first.listed).toBeGreaterThan(300);
    expect(second.listed).toBe(7);
    expect(second.hashed).toBe(3);
    writeFromMount([l0!, ...stable], join(root, 'kernel.sqfs'), join(root, 'mnt'));
    expect(sha(join(root, '2.sqfs'))).toBe(sha(join(root, 'kernel.sqfs')));
  });

  it('a damaged listing memo is detected, warned, ignored and written again; the image is the same', () => {
    const root = join(work, 'memo-damage');
    const layers = ruleLayers(root, 'trusted.overlay.');
    const cache = join(root, 'cache');
    const args = (out: string): string[] => [...layerArgs(layers, '--stable-layer'), join(root, out), '--block-cache', cache];
    write(args('1.sqfs'));
    const sub = readdirSync(join(cache, 'listings')).sort()[0]!;
    const memo = join(cache, 'listings', sub, readdirSync(join(cache, 'listings', sub))[0]!);
    const bytes = readFileSync(memo);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(memo, bytes);
    const damaged = write(args('2.sqfs'));
    expect(damaged.stderr).toContain(`warning: block cache: damaged listing memo ${memo} (digest mismatch): ignored, the layer is listed again`);
    expect(sha(join(root, '2.sqfs'))).toBe(sha(join(root, '1.sqfs')));
    const again = write(args('3.sqfs'));
    expect(again.stderr).toBe('');
    expect(again.listed).toBe(0);
    expect(sha(join(root, '3.sqfs'))).toBe(sha(join(root, '1.sqfs')));
  });

  it('a truncated memo, and a forged one (a valid seal over entries that do not parse), are refused with a warning each; the image is the same', () => {
    const root = join(work, 'memo-hostile');
    const layers = ruleLayers(root, 'trusted.overlay.');
    const cache = join(root, 'cache');
    const args = (out: string): string[] => [...layerArgs(layers, '--stable-layer'), join(root, out), '--block-cache', cache];
    write(args('1.sqfs'));
    const memoOf = (): string => {
      const sub = readdirSync(join(cache, 'listings')).sort()[0]!;
      return join(cache, 'listings', sub, readdirSync(join(cache, 'listings', sub)).sort()[0]!);
    };
    const memo = memoOf();
    writeFileSync(memo, readFileSync(memo).subarray(0, 10));
    const truncated = write(args('2.sqfs'));
    expect(truncated.stderr).toContain(`warning: block cache: damaged listing memo ${memo} (bad size): ignored, the layer is listed again`);
    expect(sha(join(root, '2.sqfs'))).toBe(sha(join(root, '1.sqfs')));
    // Forged: magic, length, a root folder claiming 2^32-1 entries (stat fields, flags, empty name,
    // target, xattrs and skipped name, then the count), and a correct seal.
    const body = Buffer.alloc(48 + 1 + 2 + 4 + 4 + 2 + 4);
    body.writeUInt32LE(0o40755, 0);
    body.writeUInt32LE(0xffffffff, body.length - 4);
    const head = Buffer.concat([Buffer.from('OSQFL1\0\0', 'latin1'), Buffer.alloc(8)]);
    head.writeBigUInt64LE(BigInt(body.length), 8);
    const unsealed = Buffer.concat([head, body]);
    writeFileSync(memoOf(), Buffer.concat([unsealed, createHash('sha256').update(unsealed).digest()]));
    const forged = write(args('3.sqfs'));
    expect(forged.stderr).toContain('(bad entries): ignored, the layer is listed again');
    expect(sha(join(root, '3.sqfs'))).toBe(sha(join(root, '1.sqfs')));
  });

  it('a file hidden when the memo was written and visible now (its layer above removed) is read, and correct', () => {
    const root = join(work, 'memo-hidden');
    const [l0, l1, l2, l3] = ruleLayers(root, 'trusted.overlay.');
    const cache = join(root, 'cache');
    write([...layerArgs([l0!, l1!, l2!, l3!], '--stable-layer'), join(root, '1.sqfs'), '--block-cache', cache]);
    // Without l2, l3's a/f1 (hidden by l2's before) and d/x (below l2's opaque d) are in the view.
    const w = write([...layerArgs([l0!, l1!, l3!], '--stable-layer'), join(root, '2.sqfs'), '--block-cache', cache]);
    expect(w.listed).toBe(0);
    writeFromMount([l0!, l1!, l3!], join(root, 'kernel.sqfs'), join(root, 'mnt'));
    expect(sha(join(root, '2.sqfs'))).toBe(sha(join(root, 'kernel.sqfs')));
    expect(execFileSync('unsquashfs', ['-cat', join(root, '2.sqfs'), 'a/f1'], { encoding: 'utf8' })).toBe('base f1\n');
  });
});

const present = (path: string): boolean => {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
};

/** A seeded random stack of four layers over a pool of paths: files, folders, symlinks, whiteouts, opaque folders, hardlinks. */
function randomLayers(root: string, seed: number): string[] {
  let s = seed * 2654435761;
  const rand = (n: number): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % n;
  };
  const names = ['a', 'b', 'c', 'dd', 'e'];
  const paths: string[] = [];
  for (const x of names) {
    paths.push(x);
    for (const y of names) {
      paths.push(`${x}/${y}`);
      for (const z of names.slice(0, 3)) paths.push(`${x}/${y}/${z}`);
    }
  }
  const layers = [0, 1, 2, 3].map((i) => join(root, `l${i}`));
  // Bottom up, so an upper layer's entries can be made over existing folders in its own tree.
  for (let li = 3; li >= 0; li--) {
    const layer = layers[li]!;
    mkdirSync(layer, { recursive: true });
    const count = li === 3 ? 60 : 20;
    for (let k = 0; k < count; k++) {
      const rel = paths[rand(paths.length)]!;
      const path = join(layer, rel);
      // A parent that is not a folder in this layer: skip (the layer's own tree must be valid).
      let blocked = false;
      for (let p = dirname(rel); p !== '.'; p = dirname(p)) if (present(join(layer, p)) && !lstatSync(join(layer, p)).isDirectory()) blocked = true;
      if (blocked || present(path)) continue;
      mkdirSync(dirname(path), { recursive: true });
      const what = rand(li === 3 ? 5 : 8);
      const mtime = 1_500_000_000 + rand(100_000_000);
      if (what <= 1) file(path, seeded(`${seed}-${li}-${rel}`, rand(3) === 0 ? 200_000 + rand(100_000) : rand(5000)), [0o644, 0o600, 0o755, 0o4755][rand(4)]!, mtime);
      else if (what === 2) {
        dir(path, [0o755, 0o700, 0o1777][rand(3)]!);
        if (rand(3) === 0) xattr(path, 'user.k', `v${rand(9)}`);
        utimesSync(path, mtime, mtime);
      } else if (what === 3) symlinkSync(`target-${rand(9)}`, path);
      else if (what === 4) {
        file(path, `linked ${rel}\n`, 0o644, mtime);
        const other = `${path}-link`;
        if (!present(other)) linkSync(path, other);
      } else if (what === 5 || what === 6) whiteout(path);
      else {
        dir(path);
        xattr(path, 'trusted.overlay.opaque', 'y');
        file(join(path, 'inside-opaque'), `opaque ${rel}\n`, 0o644, mtime);
      }
    }
  }
  return layers;
}

describe('orchestrator-mksquashfs: a block cache on another file system', () => {
  it('copies its checked entries into an image on another file system (where copy_file_range cannot): the same bytes, nothing compressed again', () => {
    const root = join(work, 'xfs');
    const cache = join(root, 'cache');
    mkdirSync(cache, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', cache]);
    try {
      const layers = ruleLayers(join(root, 'tree'), 'trusted.overlay.');
      file(join(layers[3]!, 'big2'), seeded('big2', 400_000));
      const args = (out: string): string[] => [...layerArgs(layers, '--stable-layer'), join(root, out), '--block-cache', cache];
      write(args('1.sqfs'));
      // The entries are checked (and remembered as such) by a write at least a second after they were made.
      execFileSync('sleep', ['1.1']);
      write(args('2.sqfs'));
      const r = spawnSync(writerPath, [...args('3.sqfs'), '--progress-fd', '1', '--clamp', '2000000000'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { compressed: number; reused: number };
      expect(last.compressed).toBe(0);
      expect(last.reused).toBeGreaterThanOrEqual(3 * 131072);
      expect(sha(join(root, '3.sqfs'))).toBe(sha(join(root, '1.sqfs')));
    } finally {
      execFileSync('umount', [cache]);
    }
  });
});

import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADDON_PATH, isErrno, nativeAddon } from '../../src/native/addon.js';

const addon = nativeAddon();
const { constants } = addon;

let root: string;
let tmpfs: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'orch-addon-'));
  tmpfs = join(root, 'tmpfs');
  execFileSync('mkdir', [tmpfs]);
  execFileSync('mount', ['-t', 'tmpfs', 'orch-addon-test', tmpfs]);
});

afterAll(() => {
  execFileSync('umount', [tmpfs]);
  rmSync(root, { recursive: true, force: true });
});

function thrown(fn: () => unknown): Record<string, unknown> {
  try {
    fn();
  } catch (e) {
    return { ...(e as object), message: (e as Error).message };
  }
  throw new Error('expected a throw');
}

describe('mknod', () => {
  it('makes character and block devices with their numbers, and fifos', () => {
    const chr = join(root, 'chr');
    addon.mknod(chr, constants.S_IFCHR | 0o640, 1, 3);
    const s = lstatSync(chr);
    expect(s.isCharacterDevice()).toBe(true);
    expect(s.mode & 0o7777).toBe(0o640 & ~process.umask());
    expect(s.rdev).toBe((1 << 8) | 3);

    const blk = join(root, 'blk');
    addon.mknod(blk, constants.S_IFBLK | 0o600, 7, 300);
    const b = lstatSync(blk);
    expect(b.isBlockDevice()).toBe(true);
    // Linux's encoding of minors > 255: low 8 bits, then major, then the high minor bits.
    expect(b.rdev).toBe((300 & 0xff) | (7 << 8) | ((300 & ~0xff) << 12));

    const whiteout = join(root, 'whiteout');
    addon.mknod(whiteout, constants.S_IFCHR, 0, 0);
    expect(lstatSync(whiteout).rdev).toBe(0);

    const fifo = join(root, 'fifo');
    addon.mknod(fifo, constants.S_IFIFO | 0o644, 0, 0);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('throws a Node-style error with code, errno, syscall and path', () => {
    const path = join(root, 'chr');
    expect(thrown(() => addon.mknod(path, constants.S_IFCHR, 0, 0))).toEqual({
      message: `EEXIST: File exists, mknod '${path}'`,
      code: 'EEXIST',
      errno: -17,
      syscall: 'mknod',
      path,
    });
    const missing = join(root, 'no', 'such');
    expect(thrown(() => addon.mknod(missing, constants.S_IFIFO, 0, 0))).toMatchObject({ code: 'ENOENT', syscall: 'mknod', path: missing });
  });

  it('rejects wrong argument types with a TypeError', () => {
    expect(() => addon.mknod(42 as unknown as string, 0, 0, 0)).toThrow(TypeError);
    expect(() => addon.mknod('x\0y', 0, 0, 0)).toThrow('mknod: string argument contains a NUL byte');
  });
});

describe.each([
  ['ext4 (the temp folder)', () => root],
  ['tmpfs', () => tmpfs],
])('extended attributes on %s', (_name, base) => {
  it('sets, gets, lists and removes user.* and trusted.* attributes (trusted.* needs root: tests run as root)', () => {
    const file = join(base(), 'xattr-file');
    writeFileSync(file, 'x');
    addon.lsetxattr(file, 'user.greeting', Buffer.from('hello'));
    addon.lsetxattr(file, 'trusted.overlay.opaque', Buffer.from('y'));
    addon.lsetxattr(file, 'user.empty', Buffer.alloc(0));
    expect(addon.lgetxattr(file, 'user.greeting').toString()).toBe('hello');
    expect(addon.lgetxattr(file, 'trusted.overlay.opaque').toString()).toBe('y');
    expect(addon.lgetxattr(file, 'user.empty').length).toBe(0);
    expect(addon.llistxattr(file).sort()).toEqual(['trusted.overlay.opaque', 'user.empty', 'user.greeting']);

    addon.lremovexattr(file, 'user.greeting');
    expect(thrown(() => addon.lgetxattr(file, 'user.greeting'))).toMatchObject({ code: 'ENODATA', syscall: 'lgetxattr', path: file });
    expect(isErrno(thrown(() => addon.lremovexattr(file, 'user.greeting')), 'ENODATA')).toBe(true);
  });

  it('honours XATTR_CREATE and XATTR_REPLACE', () => {
    const file = join(base(), 'xattr-flags');
    writeFileSync(file, 'x');
    expect(thrown(() => addon.lsetxattr(file, 'user.a', Buffer.from('1'), constants.XATTR_REPLACE))).toMatchObject({ code: 'ENODATA' });
    addon.lsetxattr(file, 'user.a', Buffer.from('1'), constants.XATTR_CREATE);
    expect(thrown(() => addon.lsetxattr(file, 'user.a', Buffer.from('2'), constants.XATTR_CREATE))).toMatchObject({ code: 'EEXIST' });
    addon.lsetxattr(file, 'user.a', Buffer.from('3'), constants.XATTR_REPLACE);
    expect(addon.lgetxattr(file, 'user.a').toString()).toBe('3');
  });

  it('works on a symlink itself, not its target (trusted.* is allowed on links)', () => {
    const target = join(base(), 'link-target');
    const link = join(base(), 'link');
    writeFileSync(target, 't');
    symlinkSync(target, link);
    addon.lsetxattr(link, 'trusted.mark', Buffer.from('on-link'));
    expect(addon.lgetxattr(link, 'trusted.mark').toString()).toBe('on-link');
    expect(addon.llistxattr(target)).toEqual([]);
    // user.* attributes are not permitted on symlinks by the kernel.
    expect(thrown(() => addon.lsetxattr(link, 'user.x', Buffer.from('1')))).toMatchObject({ code: 'EPERM', syscall: 'lsetxattr' });
  });

  it('keeps binary values (security.capability) byte for byte', () => {
    const file = join(base(), 'cap-file');
    writeFileSync(file, 'x');
    // vfs_cap_data v2: cap_net_raw permitted+effective.
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    addon.lsetxattr(file, 'security.capability', cap);
    expect(addon.lgetxattr(file, 'security.capability')).toEqual(cap);
  });
});

describe('syncfs', () => {
  it('flushes the file system of a path, and names the path when it is missing', () => {
    addon.syncfs(root);
    const missing = join(root, 'missing');
    expect(thrown(() => addon.syncfs(missing))).toMatchObject({ code: 'ENOENT', syscall: 'open', path: missing });
  });
});

describe('renameat2', () => {
  it('exposes the flag constants', () => {
    expect(constants).toMatchObject({ RENAME_NOREPLACE: 1, RENAME_EXCHANGE: 2, RENAME_WHITEOUT: 4 });
  });

  it('renames; with RENAME_NOREPLACE refuses to replace an existing target', () => {
    const a = join(root, 'rn-a');
    const b = join(root, 'rn-b');
    writeFileSync(a, 'a');
    writeFileSync(b, 'b');
    expect(thrown(() => addon.renameat2(a, b, constants.RENAME_NOREPLACE))).toEqual({
      message: `EEXIST: File exists, renameat2 '${a}' -> '${b}'`,
      code: 'EEXIST',
      errno: -17,
      syscall: 'renameat2',
      path: a,
      dest: b,
    });
    expect(readFileSync(b, 'utf8')).toBe('b');
    const c = join(root, 'rn-c');
    addon.renameat2(a, c, constants.RENAME_NOREPLACE);
    expect(readFileSync(c, 'utf8')).toBe('a');
    addon.renameat2(c, b);
    expect(readFileSync(b, 'utf8')).toBe('a');
  });

  it('exchanges two paths atomically with RENAME_EXCHANGE', () => {
    const a = join(root, 'ex-a');
    const b = join(root, 'ex-b');
    writeFileSync(a, 'a');
    writeFileSync(b, 'b');
    addon.renameat2(a, b, constants.RENAME_EXCHANGE);
    expect(readFileSync(a, 'utf8')).toBe('b');
    expect(readFileSync(b, 'utf8')).toBe('a');
    expect(thrown(() => addon.renameat2(a, join(root, 'ex-missing'), constants.RENAME_EXCHANGE))).toMatchObject({ code: 'ENOENT' });
  });
});

describe('treeStat', () => {
  /** A small tree: a folder, a file, a symlink (to outside: never followed) and a fifo. */
  function makeTree(): string {
    const t = mkdtempSync(join(root, 'tree-'));
    execFileSync('mkdir', ['-p', join(t, 'a/b')]);
    writeFileSync(join(t, 'a/b/file'), 'one');
    writeFileSync(join(t, 'top'), 'two');
    symlinkSync('/etc', join(t, 'link'));
    addon.mknod(join(t, 'fifo'), constants.S_IFIFO | 0o600, 0, 0);
    return t;
  }

  it('is stable for an unchanged tree and counts every entry, the root included', async () => {
    const t = makeTree();
    const a = await addon.treeStat(t);
    expect(a.signature).toMatch(/^[0-9a-f]{32}$/);
    expect(a.entries).toBe(7);
    expect(await addon.treeStat(t)).toEqual(a);
    // The newest ctime is the newest change in the tree, in ms since the epoch.
    expect(Math.abs(a.newestCtimeMs - lstatSync(join(t, 'fifo')).ctimeMs)).toBeLessThan(1);
  });

  it.each<[string, (t: string) => void]>([
    ['a same-size content change', (t) => writeFileSync(join(t, 'a/b/file'), 'uno')],
    ['a mode change', (t) => execFileSync('chmod', ['600', join(t, 'top')])],
    ['an owner change', (t) => execFileSync('chown', ['65534', join(t, 'top')])],
    ['a touch', (t) => execFileSync('touch', ['-d', '2001-01-01', join(t, 'top')])],
    ['a rename', (t) => execFileSync('mv', [join(t, 'top'), join(t, 'top2')])],
    ['a new empty file deep down', (t) => writeFileSync(join(t, 'a/b/new'), '')],
    ['a removed file', (t) => rmSync(join(t, 'a/b/file'))],
    ['a symlink pointed elsewhere', (t) => (rmSync(join(t, 'link')), symlinkSync('/usr', join(t, 'link')))],
    ['a hard link made elsewhere (link count)', (t) => execFileSync('ln', [join(t, 'top'), join(root, `hard-${Date.now()}`)])],
  ])('changes with %s', async (_, change) => {
    const t = makeTree();
    const before = await addon.treeStat(t);
    // Timestamps have the kernel's tick for resolution: step past it so a change cannot hide in it.
    await new Promise((r) => setTimeout(r, 20));
    change(t);
    expect((await addon.treeStat(t)).signature).not.toBe(before.signature);
  });

  it('does not follow a symlink given as the root, and describes a single file', async () => {
    const t = makeTree();
    const link = await addon.treeStat(join(t, 'link'));
    expect(link.entries).toBe(1);
    expect((await addon.treeStat(join(t, 'top'))).entries).toBe(1);
  });

  it('rejects like fs.promises for a missing path, and with a TypeError for a non-string', async () => {
    const missing = join(root, 'missing');
    await expect(addon.treeStat(missing)).rejects.toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'lstat', path: missing });
    expect(() => (addon.treeStat as unknown as (x: number) => unknown)(5)).toThrow(TypeError);
  });

  it('rejects naming the call that failed inside the tree', async () => {
    const t = makeTree();
    execFileSync('chmod', ['000', join(t, 'a')]);
    // Root reads through 000 folders; a non-root user cannot.
    const r = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e',
      `require(${JSON.stringify(ADDON_PATH)}).treeStat(${JSON.stringify(t)}).then(() => console.log('ok'), (e) => console.log(e.code, e.syscall))`], { encoding: 'utf8' });
    expect(r.trim()).toMatch(/^EACCES (open|openat|fdopendir|fstatat|lstat)$/);
  });
});

describe('witness', () => {
  const { TREE_STAT_FOLLOW_ROOT: FOLLOW, TREE_STAT_SHALLOW: SHALLOW } = constants;

  it('signs many paths in one call: trees as treeStat does, absent paths, followed links, shallow folders', async () => {
    const t = mkdtempSync(join(root, 'witness-'));
    execFileSync('mkdir', ['-p', join(t, 'dir/sub')]);
    writeFileSync(join(t, 'dir/sub/f'), 'x');
    symlinkSync('dir', join(t, 'link'));
    const paths = [join(t, 'dir'), join(t, 'missing'), join(t, 'link'), join(t, 'link'), join(t, 'dir')];
    const flags = Uint8Array.from([0, 0, 0, FOLLOW, FOLLOW | SHALLOW]);
    const before = await addon.witness(paths, flags);
    expect(before.signatures[0]).toBe((await addon.treeStat(join(t, 'dir'))).signature);
    expect(before.signatures[1]).toBe('absent');
    expect(before.signatures[2]).toBe((await addon.treeStat(join(t, 'link'))).signature);
    expect(before.signatures[3]).not.toBe(before.signatures[2]);
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(join(t, 'dir/sub/f'), 'y');
    const after = await addon.witness(paths, flags);
    // The link itself did not change; what it points at did; the folder's own names did not.
    expect(after.signatures[2]).toBe(before.signatures[2]);
    expect(after.signatures[3]).not.toBe(before.signatures[3]);
    expect(after.signatures[0]).not.toBe(before.signatures[0]);
    expect(after.signatures[4]).toBe(before.signatures[4]);
    writeFileSync(join(t, 'dir/new'), '');
    expect((await addon.witness(paths, flags)).signatures[4]).not.toBe(before.signatures[4]);
    expect(after.newestCtimeMs).toBeGreaterThanOrEqual(before.newestCtimeMs);
  });

  it('reports errors per path, and refuses flags that do not match the paths', async () => {
    const t = mkdtempSync(join(root, 'witness-'));
    writeFileSync(join(t, 'file'), '');
    const r = await addon.witness([join(t, 'file', 'below'), join(t, 'file')], Uint8Array.from([0, 0]));
    expect(r.signatures[0]).toBe('absent');
    expect(r.signatures[1]).toMatch(/^[0-9a-f]{32}$/);
    expect(() => addon.witness([t], new Uint8Array(2))).toThrow(TypeError);
    expect(() => (addon.witness as unknown as (a: unknown, b: unknown) => unknown)([5], new Uint8Array(1))).toThrow(TypeError);
    expect((await addon.witness([], new Uint8Array(0))).signatures).toEqual([]);
  });
});

describe('treeList', () => {
  it('lists root first with stat numbers, and rejects or throws like treeStat', async () => {
    const t = mkdtempSync(join(root, 'list-'));
    writeFileSync(join(t, 'f'), 'abc');
    symlinkSync('f', join(t, 'l'));
    const r = await addon.treeList(t);
    expect(r.paths[0]).toBe('.');
    expect([...r.paths].sort()).toEqual(['.', 'f', 'l']);
    const i = r.paths.indexOf('f');
    expect(r.stats.length).toBe(3 * constants.TREE_LIST_FIELDS);
    expect(r.stats[i * constants.TREE_LIST_FIELDS + 3]).toBe(3);
    expect(r.stats[i * constants.TREE_LIST_FIELDS + 4]).toBe(lstatSync(join(t, 'f')).ino);
    expect(r.links[r.paths.indexOf('l')]).toBe('f');
    expect(r.links[i]).toBeNull();
    await expect(addon.treeList(join(t, 'missing'))).rejects.toMatchObject({ code: 'ENOENT', syscall: 'lstat' });
    expect(() => (addon.treeList as unknown as (x: number) => unknown)(1)).toThrow(TypeError);
  });
});

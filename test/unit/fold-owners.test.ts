import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { foldedTree, modeBits } from '../../src/builder/fold-owners.js';
import { Store } from '../../src/store/store.js';

describe('modeBits', () => {
  it("reads ls's nine letters, with setuid, setgid and sticky in either case", () => {
    expect(modeBits('rwxr-xr-x')).toBe(0o755);
    expect(modeBits('rwxr-x---')).toBe(0o750);
    expect(modeBits('rwsr-xr-x')).toBe(0o4755);
    expect(modeBits('rwSr--r--')).toBe(0o4644);
    expect(modeBits('rwxrwsr-x')).toBe(0o2775);
    expect(modeBits('rwxrwxrwt')).toBe(0o1777);
    expect(modeBits('rw-rw-rwT')).toBe(0o1666);
    expect(modeBits('---------')).toBe(0);
  });
});

// foldedTree runs in single-id mode as the namespace's 0; here it runs as root, which makes what it
// copies root's (0) just the same, so the copy and its counts can be checked on the host.
describe('foldedTree', () => {
  let dir: string;
  let store: Store;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'orch-fold-'));
    store = await Store.open({ dir: join(dir, 'cache') });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the folder itself when every owner is 0 already', async () => {
    const root = join(dir, 'rootfs');
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
    const r = await foldedTree(root, 'a'.repeat(64), store);
    expect(r).toEqual({ ok: true, value: { path: root, ownersFolded: 0, devicesSkipped: 0 } });
  });

  it('copies a tree with other owners once, every owner 0, keeping modes, links, times and user xattrs; devices left out; both counted', async () => {
    const root = join(dir, 'rootfs');
    mkdirSync(join(root, 'home/u'), { recursive: true });
    chmodSync(join(root, 'home/u'), 0o750);
    chownSync(join(root, 'home/u'), 1234, 1234);
    writeFileSync(join(root, 'home/u/notes.txt'), 'notes\n');
    chownSync(join(root, 'home/u/notes.txt'), 1234, 1234);
    linkSync(join(root, 'home/u/notes.txt'), join(root, 'home/u/again.txt'));
    writeFileSync(join(root, 'suid'), '#!/bin/sh\n');
    // Owner first: chown clears the setuid bit.
    chownSync(join(root, 'suid'), 0, 42);
    chmodSync(join(root, 'suid'), 0o4755);
    symlinkSync('home/u/notes.txt', join(root, 'link'));
    execFileSync('setfattr', ['-n', 'user.note', '-v', 'kept', join(root, 'suid')]);
    execFileSync('mknod', [join(root, 'null'), 'c', '1', '3']);
    utimesSync(join(root, 'home/u'), 1_600_000_000, 1_600_000_000);
    const r = await foldedTree(root, 'b'.repeat(64), store);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    // home/u, notes.txt and its second link (one entry each in the walk), suid (group 42).
    expect(r.value).toEqual({ path: store.snapshotPath(`local-${'b'.repeat(64)}-single-id`), ownersFolded: 4, devicesSkipped: 1 });
    const out = r.value.path;
    for (const p of ['home/u', 'home/u/notes.txt', 'suid', 'link']) expect([p, lstatSync(join(out, p)).uid, lstatSync(join(out, p)).gid]).toEqual([p, 0, 0]);
    expect(lstatSync(join(out, 'home/u')).mode & 0o7777).toBe(0o750);
    expect(lstatSync(join(out, 'home/u')).mtimeMs).toBe(1_600_000_000_000);
    expect(lstatSync(join(out, 'suid')).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(join(out, 'home/u/again.txt')).ino).toBe(lstatSync(join(out, 'home/u/notes.txt')).ino);
    expect(readFileSync(join(out, 'home/u/notes.txt'), 'utf8')).toBe('notes\n');
    expect(readlinkSync(join(out, 'link'))).toBe('home/u/notes.txt');
    expect(execFileSync('getfattr', ['--only-values', '-n', 'user.note', join(out, 'suid')], { encoding: 'utf8' })).toBe('kept');
    expect(() => lstatSync(join(out, 'null'))).toThrow(/ENOENT/);
    // Made once: the second call finds the copy (and counts nothing again).
    expect(await foldedTree(root, 'b'.repeat(64), store)).toEqual({ ok: true, value: { path: out, ownersFolded: 0, devicesSkipped: 0 } });
  });
});

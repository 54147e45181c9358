import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_RACY_MARGIN_MS, StatIndex } from '../../src/freshness/stat-index.js';
import { diffTrees, fileSha256, listTree, listTreeByLstat, treeDigest, treeIdentity, writtenTreeDigest } from '../../src/freshness/tree-digest.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'orch-tree-'));
  mkdirSync(join(dir, 'a/b'), { recursive: true });
  writeFileSync(join(dir, 'a/b/file'), 'one');
  writeFileSync(join(dir, 'top'), 'two');
  symlinkSync('a/b/file', join(dir, 'link'));
});
afterEach(() => {
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

describe('treeDigest', () => {
  it('is stable, ignores times, and sees content, mode and link changes', async () => {
    const first = await treeDigest(dir);
    expect((await treeDigest(dir)).digest).toBe(first.digest);
    utimesSync(join(dir, 'top'), new Date(0), new Date(0));
    expect((await treeDigest(dir)).digest).toBe(first.digest);

    writeFileSync(join(dir, 'a/b/file'), 'changed');
    chmodSync(join(dir, 'top'), 0o600);
    rmSync(join(dir, 'link'));
    symlinkSync('elsewhere', join(dir, 'link'));
    writeFileSync(join(dir, 'new'), '');
    const second = await treeDigest(dir);
    expect(second.digest).not.toBe(first.digest);
    expect(diffTrees(first.entries, second.entries)).toEqual([
      { path: 'a/b/file', change: 'changed' },
      { path: 'link', change: 'changed' },
      { path: 'new', change: 'added' },
      { path: 'top', change: 'changed' },
    ]);
  });

  it('gives a digest that matches nothing, and remembers nothing, for a file removed or replaced while the tree is walked', async () => {
    const before = await treeDigest(dir);
    for (const replace of [() => rmSync(join(dir, 'top')), () => (rmSync(join(dir, 'top')), mkdirSync(join(dir, 'top')))]) {
      const index = await StatIndex.load(join(dir, '..', `index-${process.pid}.json`));
      // The index is consulted between the listing and the hashing: the file goes away right then.
      const lookup = index.lookup.bind(index);
      const remember = vi.spyOn(index, 'remember');
      vi.spyOn(index, 'lookup').mockImplementation((path, key) => {
        if (path === join(dir, 'top')) replace();
        return lookup(path, key);
      });
      const during = await treeDigest(dir, { index });
      expect(during.entries.find((e) => e.path === 'top')?.summary).toMatch(/^f 100000 \d+ \d+:\d+ changed-during-walk$/);
      expect(during.digest).not.toBe(before.digest);
      expect(remember.mock.calls.map((c) => c[0])).not.toContain(join(dir, 'top'));
      rmSync(join(dir, 'top'), { recursive: true, force: true });
      writeFileSync(join(dir, 'top'), 'two');
    }
  });

  it('lists entries in sorted order with the root first', async () => {
    expect((await treeDigest(dir)).entries.map((e) => e.path)).toEqual(['.', 'a', 'a/b', 'a/b/file', 'link', 'top']);
  });
});

describe('StatIndex', () => {
  it('skips re-hashing an unchanged file and re-hashes a changed one', async () => {
    const index = StatIndex.inMemory();
    const f = join(dir, 'top');
    const sha = await fileSha256(f, { index });
    // Plant a value: an unchanged stat must return it without reading the file.
    const st = (await import('node:fs')).lstatSync(f);
    index.remember(f, StatIndex.statKey(st), 'cached-value', { ctimeMs: st.ctimeMs, seenAtMs: st.ctimeMs + MAX_RACY_MARGIN_MS + 1 });
    expect(await fileSha256(f, { index })).toBe('cached-value');
    writeFileSync(f, 'different content');
    expect(await fileSha256(f, { index })).not.toBe('cached-value');
    expect(sha).toBe('3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3');
  });

  it('does not remember a file changed just before it was hashed (it could change again unseen)', async () => {
    const index = StatIndex.inMemory();
    const f = join(dir, 'top');
    await fileSha256(f, { index });
    expect(index.lookup(f, StatIndex.statKey((await import('node:fs')).lstatSync(f)))).toBeUndefined();
  });

  it('persists across loads', async () => {
    const file = join(dir, 'index.json');
    const a = await StatIndex.load(file);
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + MAX_RACY_MARGIN_MS + 1000 });
    await fileSha256(join(dir, 'top'), { index: a });
    vi.useRealTimers();
    await a.save();
    const b = await StatIndex.load(file);
    const st = (await import('node:fs')).lstatSync(join(dir, 'top'));
    expect(b.lookup(join(dir, 'top'), StatIndex.statKey(st))).toBe('3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3');
  });
});

describe('treeIdentity', () => {
  /** Looks at the tree as if `ms` had passed since it was written. */
  const later = (ms = MAX_RACY_MARGIN_MS + 1000) => vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + ms });

  it('answers from the stat signature without walking an unchanged tree, and persists it', async () => {
    const file = join(dir, 'index.json');
    const index = await StatIndex.load(file);
    later();
    const first = await treeIdentity(join(dir, 'a'), { index });
    expect(first.entries).toBeDefined();
    expect(first.digest).toBe((await treeDigest(join(dir, 'a'))).digest);
    const second = await treeIdentity(join(dir, 'a'), { index });
    expect(second).toEqual({ digest: first.digest });
    await index.save();
    expect(await treeIdentity(join(dir, 'a'), { index: await StatIndex.load(file) })).toEqual({ digest: first.digest });
  });

  it('walks again after any change, and a touch alone gives the same digest', async () => {
    const index = StatIndex.inMemory();
    later();
    const first = await treeIdentity(dir, { index });
    vi.useRealTimers();
    await new Promise((r) => setTimeout(r, 20));
    utimesSync(join(dir, 'top'), new Date(0), new Date(0));
    later();
    const touched = await treeIdentity(dir, { index });
    expect(touched.entries).toBeDefined();
    expect(touched.digest).toBe(first.digest);
    vi.useRealTimers();
    await new Promise((r) => setTimeout(r, 20));
    // Same size, same mtime as before: only the ctime tells.
    writeFileSync(join(dir, 'a/b/file'), 'uno');
    utimesSync(join(dir, 'a/b/file'), new Date(0), new Date(0));
    later();
    const changed = await treeIdentity(dir, { index });
    expect(changed.digest).not.toBe(first.digest);
    expect(diffTrees(first.entries ?? [], changed.entries ?? [])).toEqual([{ path: 'a/b/file', change: 'changed' }]);
  });

  it('does not trust a signature taken just after a change: the tree is walked again', async () => {
    const index = StatIndex.inMemory();
    expect((await treeIdentity(dir, { index })).entries).toBeDefined();
    expect((await treeIdentity(dir, { index })).entries).toBeDefined();
  });

  it('without an index, always walks', async () => {
    later();
    expect((await treeIdentity(dir)).entries).toBeDefined();
  });
});

describe('listTree', () => {
  it('lists natively exactly what lstat sees: every kind of entry, modes, owners, times, link targets', async () => {
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    execFileSync('mknod', [join(dir, 'null'), 'c', '1', '3']);
    execFileSync('chmod', ['4755', join(dir, 'top')]);
    execFileSync('chown', ['65534:65534', join(dir, 'a/b/file')]);
    symlinkSync('/elsewhere/absolute', join(dir, 'a/abs-link'));
    writeFileSync(join(dir, 'a/b/späce ünïcode'), 'x');
    const pick = (l: Awaited<ReturnType<typeof listTree>>) =>
      l
        .map((e) => ({ rel: e.rel, link: e.link, ...Object.fromEntries(['mode', 'uid', 'gid', 'size', 'ino', 'dev', 'rdev', 'mtimeMs', 'ctimeMs'].map((k) => [k, (e.st as unknown as Record<string, number>)[k]])) }))
        .sort((x, y) => (x.rel < y.rel ? -1 : 1));
    const native = pick(await listTree(dir));
    expect(native).toEqual(pick(listTreeByLstat(dir)));
    expect(native.map((e) => e.rel)).toEqual(['.', 'a', 'a/abs-link', 'a/b', 'a/b/file', 'a/b/späce ünïcode', 'fifo', 'link', 'null', 'top']);
    expect(await listTree(join(dir, 'link'))).toHaveLength(1);
    await expect(listTree(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('writtenTreeDigest', () => {
  it('remembers a tree just written, so that the next look needs no walk; a later change is seen', async () => {
    const index = StatIndex.inMemory();
    const clockDir = mkdtempSync(join(tmpdir(), 'orch-clock-'));
    try {
      writeFileSync(join(dir, 'a/b/file'), 'just written');
      const written = await writtenTreeDigest(dir, { index, clockDir });
      expect(written.digest).toBe((await treeDigest(dir)).digest);
      expect(await treeIdentity(dir, { index })).toEqual({ digest: written.digest });
      writeFileSync(join(dir, 'a/b/file'), 'just writteN');
      const after = await treeIdentity(dir, { index });
      expect(after.entries).toBeDefined();
      expect(after.digest).not.toBe(written.digest);
    } finally {
      rmSync(clockDir, { recursive: true, force: true });
    }
  });
});

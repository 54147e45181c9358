import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StatIndex } from '../../src/graph/stat-index.js';
import { diffTrees, fileSha256, treeDigest } from '../../src/graph/tree-digest.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'orch-tree-'));
  mkdirSync(join(dir, 'a/b'), { recursive: true });
  writeFileSync(join(dir, 'a/b/file'), 'one');
  writeFileSync(join(dir, 'top'), 'two');
  symlinkSync('a/b/file', join(dir, 'link'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

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
    index.remember(f, StatIndex.statKey(st), 'cached-value');
    expect(await fileSha256(f, { index })).toBe('cached-value');
    writeFileSync(f, 'different content');
    expect(await fileSha256(f, { index })).not.toBe('cached-value');
    expect(sha).toBe('3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3');
  });

  it('persists across loads', async () => {
    const file = join(dir, 'index.json');
    const a = await StatIndex.load(file);
    await fileSha256(join(dir, 'top'), { index: a });
    await a.save();
    const b = await StatIndex.load(file);
    const st = (await import('node:fs')).lstatSync(join(dir, 'top'));
    expect(b.lookup(join(dir, 'top'), StatIndex.statKey(st))).toBe('3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3');
  });
});

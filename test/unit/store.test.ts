import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/core/digest.js';
import { resolveCacheRoot } from '../../src/store/cache-root.js';
import { Store } from '../../src/store/store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'orch-store-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('resolveCacheRoot', () => {
  it('prefers the option, then ORCHESTRATOR_CACHE, then XDG_CACHE_HOME, then ~/.cache', () => {
    const env = { HOME: '/home/u', XDG_CACHE_HOME: '/xdg', ORCHESTRATOR_CACHE: '/oc' };
    expect(resolveCacheRoot({ dir: '~/c', env })).toBe('/home/u/c');
    expect(resolveCacheRoot({ dir: 'rel', base: '/proj', env })).toBe('/proj/rel');
    expect(resolveCacheRoot({ env })).toBe('/oc');
    expect(resolveCacheRoot({ env: { HOME: '/home/u', XDG_CACHE_HOME: '/xdg' } })).toBe('/xdg/orchestrator');
    expect(resolveCacheRoot({ env: { HOME: '/home/u' } })).toBe('/home/u/.cache/orchestrator');
  });
});

describe('Store and BlobStore', () => {
  it('creates the layout and publishes verified blobs only', async () => {
    const store = await Store.open({ dir });
    expect((await readdir(dir)).sort()).toEqual(['blobs', 'blocks', 'layers', 'snapshots', 'tmp']);
    const data = Buffer.from('hello blob');
    const d = sha256Digest(data);
    const put = await store.blobs.putBytes(data, d);
    expect(put).toEqual({ ok: true, value: { digest: d, size: 10, path: store.blobPath(d), written: true } });
    expect(await readFile(store.blobPath(d), 'utf8')).toBe('hello blob');
    // Already there and valid: success, nothing written.
    const again = await store.blobs.putBytes(data, d);
    expect(again.ok && again.value.written).toBe(false);
    expect(await readdir(store.tmpDir)).toEqual([]);
  });

  it('rejects wrong bytes and wrong sizes, leaving nothing behind', async () => {
    const store = await Store.open({ dir });
    const d = sha256Digest('right');
    const wrong = await store.blobs.putBytes(Buffer.from('wrong'), d);
    expect(wrong.ok).toBe(false);
    if (!wrong.ok) {
      expect(wrong.error.reason).toBe('digest-mismatch');
      expect(wrong.error.message).toBe(`blob ${d.slice(0, 19)} failed verification: its content hashes to ${sha256Digest('wrong').slice(0, 19)}`);
    }
    const big = await store.blobs.put([Buffer.from('right'), Buffer.from('more')], d, 5);
    expect(!big.ok && big.error.reason).toBe('blob-size-mismatch');
    expect(await readdir(store.blobs.dir)).toEqual([]);
    expect(await readdir(store.tmpDir)).toEqual([]);
  });

  it('deletes a corrupt blob found on read', async () => {
    const store = await Store.open({ dir });
    const d = sha256Digest('payload');
    await store.blobs.putBytes(Buffer.from('payload'), d);
    await writeFile(store.blobPath(d), 'pay1oad');
    expect(await store.blobs.open(d)).toBeUndefined();
    expect(await store.blobs.has(d)).toBe(false);
    await store.blobs.putBytes(Buffer.from('payload'), d);
    expect(await store.blobs.verify(d)).toBe('valid');
  });

  it('lets two writers of one blob both succeed', async () => {
    const store = await Store.open({ dir });
    const data = Buffer.alloc(1 << 20, 7);
    const d = sha256Digest(data);
    const a = await store.blobs.begin(d, data.length);
    const b = await store.blobs.begin(d, data.length);
    await a.write(data);
    await b.write(data);
    expect((await a.commit()).ok).toBe(true);
    expect((await b.commit()).ok).toBe(true);
    expect(await store.blobs.verify(d)).toBe('valid');
    expect(await readdir(store.tmpDir)).toEqual([]);
  });

  it('sweeps temps of dead processes and lists usage', async () => {
    const store = await Store.open({ dir });
    await writeFile(join(store.tmpDir, '999999999-abc-blob'), 'x');
    await writeFile(join(store.tmpDir, `${process.pid}-abc-blob`), 'x');
    expect(await store.sweepTemps()).toBe(1);
    await store.blobs.putBytes(Buffer.from('abc'), sha256Digest('abc'));
    const usage = await store.usage();
    expect(usage.kinds.blob).toEqual({ count: 1, bytes: 3 });
    expect(usage.kinds.tmp).toEqual({ count: 1, bytes: 1 });
    expect(usage.totalBytes).toBe(4);
  });
});

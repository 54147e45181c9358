/**
 * writeSnapshotTar (src/layers/snapshot-tar.ts): an overlay upper folder → one OCI layer, and
 * back through the real unpacker into an equal folder: owners, modes, mtimes, xattrs, hard and
 * symbolic links, long names, devices, fifos, and overlay's whiteouts and opaque folders in OCI
 * form. Reproducible: the same folder gives the same digests.
 */
import fs, { chmodSync, chownSync, linkSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { writeSnapshotTar } from '../../src/layers/snapshot-tar.js';
import { unpackLayer } from '../../src/layers/unpack-layer.js';
import { nativeAddon } from '../../src/native/addon.js';
import { makeSandbox, snapshotTree, type Sandbox } from '../helpers/layers.js';

let box: Sandbox;
beforeEach(() => {
  box = makeSandbox('orch-snaptar-');
});
afterEach(() => box.cleanup());

const LONG = `deep/${'n'.repeat(120)}/${'m'.repeat(90)}.txt`;

/** An upper folder as overlayfs leaves it after a step. */
function makeUpper(root: string): void {
  const addon = nativeAddon();
  mkdirSync(join(root, 'etc/app'), { recursive: true });
  mkdirSync(join(root, 'opt/replaced'), { recursive: true });
  mkdirSync(join(root, 'deep', 'n'.repeat(120)), { recursive: true });
  writeFileSync(join(root, 'etc/app/conf'), 'a=1\n');
  writeFileSync(join(root, 'opt/replaced/new'), 'new\n');
  writeFileSync(join(root, LONG), 'long\n');
  writeFileSync(join(root, 'etc/app/tool'), '#!/bin/sh\n');
  chownSync(join(root, 'etc/app/tool'), 1000, 2000);
  chmodSync(join(root, 'etc/app/tool'), 0o4755);
  linkSync(join(root, 'etc/app/conf'), join(root, 'etc/app/conf.hard'));
  symlinkSync('../etc/app/conf', join(root, 'opt/link'));
  addon.mknod(join(root, 'etc/gone'), addon.constants.S_IFCHR, 0, 0);
  addon.mknod(join(root, 'opt/null'), addon.constants.S_IFCHR | 0o666, 1, 3);
  addon.mknod(join(root, 'opt/pipe'), addon.constants.S_IFIFO | 0o640, 0, 0);
  addon.lsetxattr(join(root, 'opt/replaced'), 'trusted.overlay.opaque', Buffer.from('y'));
  addon.lsetxattr(join(root, 'etc/app'), 'trusted.overlay.origin', Buffer.from('x'));
  addon.lsetxattr(join(root, 'etc/app/conf'), 'user.note', Buffer.from('kept ✓'));
  chmodSync(join(root, 'etc/app'), 0o750);
  for (const p of ['etc/app/conf', LONG, 'opt/replaced/new']) utimesSync(join(root, p), 1_600_000_000.25, 1_600_000_000.123456);
}

/** An upper folder with a file whose xattr value is not UTF-8 (which a layer cannot hold). */
function badUpper(): string {
  const upper = join(box.root, 'upper');
  mkdirSync(upper);
  writeFileSync(join(upper, 'bin'), 'x');
  nativeAddon().lsetxattr(join(upper, 'bin'), 'user.raw', Buffer.from([0xff, 0x00, 0xfe]));
  return upper;
}

describe('writeSnapshotTar', () => {
  it('packs an upper folder that unpacks into the same folder, with OCI whiteouts, and the same digests every time', async () => {
    const upper = join(box.root, 'upper');
    mkdirSync(upper);
    makeUpper(upper);
    const out1 = join(box.root, 'one.tar.gz');
    const out2 = join(box.root, 'two.tar.gz');
    const a = await writeSnapshotTar({ folder: upper, output: out1, compression: 'gzip' });
    const b = await writeSnapshotTar({ folder: upper, output: out2, compression: 'gzip' });
    if (!a.ok || !b.ok) throw new Error('pack failed');
    expect(b.value).toEqual(a.value);
    expect(a.value.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');

    // The names in the tar: OCI whiteouts, no device for the deleted file, byte order.
    const names: string[] = [];
    const extract = tar.extract();
    extract.on('entry', (h, s, next) => {
      names.push(h.name);
      s.resume();
      s.on('end', next);
    });
    await new Promise<void>((resolve, reject) => {
      extract.on('finish', resolve).on('error', reject);
      extract.end(gunzipSync(readFileSync(out1)));
    });
    expect(names).toContain('etc/.wh.gone');
    expect(names).toContain('opt/replaced/.wh..wh..opq');
    expect(names).toContain(LONG);
    expect(names.indexOf('etc/app/conf.hard')).toBeGreaterThan(names.indexOf('etc/app/conf'));

    const dest = join(box.layersDir, 'unpacked');
    const unpacked = await unpackLayer({ source: out1, mediaType: a.value.mediaType, expectedDiffId: a.value.diffId, destination: dest, tmpDir: box.tmpDir });
    if (!unpacked.ok) throw new Error(unpacked.error.message);
    expect({ whiteouts: unpacked.value.whiteouts, opaque: unpacked.value.opaqueDirs }).toEqual({ whiteouts: 1, opaque: 1 });
    // The unpacker sets times as float seconds: compare them to the microsecond.
    const tree = (root: string) =>
      Object.fromEntries(
        Object.entries(snapshotTree(root, { xattrs: true, mtimes: true })).map(([k, v]) => [k, v.mtimeMs === undefined ? v : { ...v, mtimeMs: Math.round(v.mtimeMs * 100) / 100 }]),
      );
    const want = tree(upper);
    // Overlay's bookkeeping (origin) is not part of the image: left out, as unpacking ignores it.
    delete (want['etc/app'] as { xattrs?: unknown }).xattrs;
    // A whiteout's own time is not part of any view of the image; the unpacker gives it none.
    const got = tree(dest);
    delete (want['etc/gone'] as { mtimeMs?: number }).mtimeMs;
    delete (got['etc/gone'] as { mtimeMs?: number }).mtimeMs;
    expect(got).toEqual(want);
    expect(want[LONG]!.mtimeMs).toBe(1_600_000_000_123.46);
  });

  it('refuses an xattr value it cannot store, and leaves no output', async () => {
    const upper = badUpper();
    const out = join(box.root, 'bad.tar.gz');
    const r = await writeSnapshotTar({ folder: upper, output: out, compression: 'gzip' });
    expect(r.ok ? undefined : r.error.message).toBe(`cannot pack ${upper} as a layer: 'bin' has the extended attribute user.raw with a binary value, which this layer writer cannot store`);
    expect(existsSync(out)).toBe(false);
  });

  it('leaves no output when it fails before the output file is even open (a busy machine: the open comes late)', async () => {
    const upper = badUpper();
    const out = join(box.root, 'late.tar.gz');
    // The output's open (by the file stream, in the thread pool) is held back for a while and
    // then done for real; the failure is found first.
    type Open = (...args: unknown[]) => void;
    const realOpen = fs.open as unknown as Open;
    let opened: Promise<void> | undefined;
    const spy = vi.spyOn(fs, 'open').mockImplementation(((path: unknown, ...rest: unknown[]) => {
      if (path !== out) return realOpen(path, ...rest);
      const callback = rest.pop() as (e: Error | null, fd?: number) => void;
      opened = new Promise<void>((resolve) => {
        setTimeout(() => realOpen(path, ...rest, (e: Error | null, fd?: number) => (callback(e, fd), resolve())), 100);
      });
    }) as unknown as typeof fs.open);
    let r;
    try {
      r = await writeSnapshotTar({ folder: upper, output: out, compression: 'gzip' });
    } finally {
      spy.mockRestore();
    }
    expect(r.ok ? undefined : r.error.reason).toBe('layer-read-failed');
    expect(opened).toBeDefined();
    await opened;
    expect(existsSync(out)).toBe(false);
  });
});

import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { zstdAvailable } from '../../src/layers/layer-compression.js';
import { unpackLayer, type UnpackLayerOptions } from '../../src/layers/unpack-layer.js';
import { nativeAddon } from '../../src/native/addon.js';
import { buildLayer, DEFAULT_MTIME, hostCanaries, layerFromTar, makeSandbox, snapshotTree, type BuiltLayer, type EntrySpec, type Sandbox } from '../helpers/layers.js';

const addon = nativeAddon();
let box: Sandbox;
beforeEach(() => {
  box = makeSandbox();
});
afterEach(() => {
  box.cleanup();
});

function options(layer: BuiltLayer, extra: Partial<UnpackLayerOptions> = {}): UnpackLayerOptions {
  return { source: box.writeBlob(layer), mediaType: layer.mediaType, expectedDiffId: layer.diffId, layerDigest: layer.digest, destination: box.destination(layer.diffId), tmpDir: box.tmpDir, ...extra };
}

async function unpackOk(layer: BuiltLayer, extra: Partial<UnpackLayerOptions> = {}): Promise<string> {
  const r = await unpackLayer(options(layer, extra));
  if (!r.ok) throw new Error(`unexpected failure: ${r.error.reason}: ${r.error.message}`);
  return r.value.path;
}

const MTIME_S = DEFAULT_MTIME.getTime() / 1000;

describe('unpackLayer: what it preserves', () => {
  it('unpacks every entry type with mode (setuid, setgid, sticky), owner, mtime, links, devices and xattrs', async () => {
    const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const layer = await buildLayer([
      { name: './', type: 'directory', mode: 0o755 },
      { name: 'bin/', type: 'directory', mode: 0o755, mtime: new Date('2020-01-01T00:00:00Z') },
      { name: 'bin/su', content: 'su binary', mode: 0o4755, uid: 0, gid: 0 },
      { name: 'bin/wall', content: 'wall', mode: 0o2755, uid: 0, gid: 5 },
      { name: 'bin/ping', content: 'ping', mode: 0o755, pax: { 'SCHILY.xattr.security.capability': cap.toString('latin1'), 'SCHILY.xattr.user.note': 'hello' } },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
      { name: 'home/user/notes.txt', content: 'my notes\n', mode: 0o600, uid: 1000, gid: 1001 },
      { name: 'bin/sh', type: 'symlink', linkname: 'busybox', uid: 1000, gid: 1001, mtime: new Date('2019-05-05T05:05:05Z') },
      { name: 'bin/su-again', type: 'link', linkname: 'bin/su' },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/loop0', type: 'block-device', devmajor: 7, devminor: 0, mode: 0o660, gid: 6 },
      { name: 'run/initctl', type: 'fifo', mode: 0o600 },
      { name: 'empty', content: '' },
    ]);
    const r = await unpackLayer(options(layer));
    expect(r).toEqual({ ok: true, value: { diffId: layer.diffId, path: box.destination(layer.diffId), reused: false, entries: 13, whiteouts: 0, ownersFolded: 0, devicesSkipped: 0, opaqueDirs: 0, tarSize: layer.tar.length } });
    const root = box.destination(layer.diffId);
    const tree = snapshotTree(root);
    expect(Object.keys(tree)).toEqual(['.', 'bin', 'bin/ping', 'bin/sh', 'bin/su', 'bin/su-again', 'bin/wall', 'dev', 'dev/loop0', 'dev/null', 'empty', 'home', 'home/user', 'home/user/notes.txt', 'run', 'run/initctl', 'tmp']);
    expect(tree['bin/su']).toMatchObject({ type: 'file', mode: 0o4755, uid: 0, gid: 0, size: 9 });
    expect(tree['bin/wall']).toMatchObject({ type: 'file', mode: 0o2755, gid: 5 });
    expect(tree['tmp']).toMatchObject({ type: 'dir', mode: 0o1777 });
    expect(tree['home/user/notes.txt']).toMatchObject({ type: 'file', mode: 0o600, uid: 1000, gid: 1001 });
    expect(tree['home']).toMatchObject({ type: 'dir', mode: 0o755, uid: 0 }); // implicit folder
    expect(tree['bin/sh']).toEqual({ type: 'symlink', mode: 0o777, uid: 1000, gid: 1001, link: 'busybox' });
    expect(tree['dev/null']).toMatchObject({ type: 'char', mode: 0o666, rdev: (1 << 8) | 3 });
    expect(tree['dev/loop0']).toMatchObject({ type: 'block', mode: 0o660, gid: 6, rdev: 7 << 8 });
    expect(tree['run/initctl']).toMatchObject({ type: 'fifo', mode: 0o600 });
    expect(tree['empty']).toMatchObject({ type: 'file', size: 0 });
    expect(readFileSync(join(root, 'home/user/notes.txt'), 'utf8')).toBe('my notes\n');
    expect(lstatSync(join(root, 'bin/su')).ino).toBe(lstatSync(join(root, 'bin/su-again')).ino);
    expect(lstatSync(join(root, 'bin/su')).nlink).toBe(2);
    expect(addon.lgetxattr(join(root, 'bin/ping'), 'security.capability')).toEqual(cap);
    expect(addon.lgetxattr(join(root, 'bin/ping'), 'user.note').toString()).toBe('hello');
    // mtimes: files, symlinks (lutimes), and folders set after their contents were written.
    expect(lstatSync(join(root, 'bin/su')).mtimeMs).toBe(MTIME_S * 1000);
    expect(lstatSync(join(root, 'bin/sh')).mtimeMs).toBe(Date.parse('2019-05-05T05:05:05Z'));
    expect(statSync(join(root, 'bin')).mtimeMs).toBe(Date.parse('2020-01-01T00:00:00Z'));
    expect(statSync(root).mtimeMs).toBe(MTIME_S * 1000);
    expect(statSync(root).mode & 0o7777).toBe(0o755);
    // Nothing is left in the temp folder.
    expect(readdirSync(box.tmpDir)).toEqual([]);
  });

  it('turns OCI whiteouts into 0/0 character devices and opaque markers into trusted.overlay.opaque', async () => {
    const layer = await buildLayer([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/.wh.motd', content: '' },
      { name: 'etc/.wh.cron.d', content: '' },
      { name: 'var/cache/apt/', type: 'directory', mode: 0o750 },
      { name: 'var/cache/apt/.wh..wh..opq', content: '' },
      { name: 'var/cache/apt/new.bin', content: 'new' },
      { name: 'opt/.wh..wh..opq', content: '' },
      { name: '.wh..wh.plnk/', type: 'directory' },
      { name: '.wh.old-root-file', content: '' },
    ]);
    const r = await unpackLayer(options(layer));
    expect(r.ok && r.value).toMatchObject({ whiteouts: 3, opaqueDirs: 2 });
    const tree = snapshotTree(box.destination(layer.diffId), { xattrs: true });
    expect(tree).toEqual({
      '.': { type: 'dir', mode: 0o755, uid: 0, gid: 0 },
      etc: { type: 'dir', mode: 0o755, uid: 0, gid: 0 },
      'etc/cron.d': { type: 'char', mode: 0, uid: 0, gid: 0, rdev: 0 },
      'etc/motd': { type: 'char', mode: 0, uid: 0, gid: 0, rdev: 0 },
      'old-root-file': { type: 'char', mode: 0, uid: 0, gid: 0, rdev: 0 },
      opt: { type: 'dir', mode: 0o755, uid: 0, gid: 0, xattrs: { 'trusted.overlay.opaque': '79' } },
      var: { type: 'dir', mode: 0o755, uid: 0, gid: 0 },
      'var/cache': { type: 'dir', mode: 0o755, uid: 0, gid: 0 },
      'var/cache/apt': { type: 'dir', mode: 0o750, uid: 0, gid: 0, xattrs: { 'trusted.overlay.opaque': '79' } },
      'var/cache/apt/new.bin': { type: 'file', mode: 0o644, uid: 0, gid: 0, size: 3, sha256: expect.any(String) },
    });
  });

  it('drops trusted.overlay.* xattrs a layer tries to smuggle in through pax headers', async () => {
    const layer = await buildLayer([{ name: 'd/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc', 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.user.kept': '1' } }]);
    const root = await unpackOk(layer);
    expect(addon.llistxattr(join(root, 'd'))).toEqual(['user.kept']);
  });

  it('unpacks a very long path (pax path record) and a long symlink target', async () => {
    const deep = Array.from({ length: 12 }, (_, i) => `component-number-${i}-${'x'.repeat(20)}`).join('/');
    const target = `../${'t'.repeat(180)}`;
    const layer = await buildLayer([
      { name: `${deep}/file.txt`, content: 'deep' },
      { name: `${deep}/link`, type: 'symlink', linkname: target },
    ]);
    expect(deep.length).toBeGreaterThan(400);
    const root = await unpackOk(layer);
    expect(readFileSync(join(root, deep, 'file.txt'), 'utf8')).toBe('deep');
    expect(readlinkSync(join(root, deep, 'link'))).toBe(target);
  });

  it('lets the last of duplicate entries win: file over file, folder over file, file over folder', async () => {
    const layer = await buildLayer([
      { name: 'a', content: 'first' },
      { name: 'a', content: 'second', mode: 0o600 },
      { name: 'b', content: 'a file' },
      { name: 'b/', type: 'directory', mode: 0o700 },
      { name: 'b/inside', content: 'x' },
      { name: 'c/', type: 'directory' },
      { name: 'c/child', content: 'gone' },
      { name: 'c', type: 'symlink', linkname: 'a' },
      { name: 'd/', type: 'directory', mode: 0o700 },
      { name: 'd/', type: 'directory', mode: 0o711 },
    ]);
    const root = await unpackOk(layer);
    const tree = snapshotTree(root);
    expect(readFileSync(join(root, 'a'), 'utf8')).toBe('second');
    expect(tree['a']).toMatchObject({ type: 'file', mode: 0o600 });
    expect(tree['b']).toMatchObject({ type: 'dir', mode: 0o700 });
    expect(tree['b/inside']).toMatchObject({ type: 'file' });
    expect(tree['c']).toMatchObject({ type: 'symlink', link: 'a' });
    expect(tree['c/child']).toBeUndefined();
    expect(tree['d']).toMatchObject({ type: 'dir', mode: 0o711 });
  });

  it('neutralises absolute paths as tar does: /etc/passwd lands in the layer, not on the host', async () => {
    const before = hostCanaries();
    const layer = await buildLayer([{ name: '/etc/passwd', content: 'evil:x:0:0::/:/bin/sh\n' }]);
    const root = await unpackOk(layer);
    expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).toBe('evil:x:0:0::/:/bin/sh\n');
    expect(hostCanaries()).toEqual(before);
  });

  it('unpacks uncompressed tar layers, and streams as well as files', async () => {
    const layer = await buildLayer([{ name: 'hello', content: 'world' }], { gzip: false });
    const root = await unpackOk(layer, { source: Readable.from([layer.blob.subarray(0, 100), layer.blob.subarray(100)]) });
    expect(readFileSync(join(root, 'hello'), 'utf8')).toBe('world');
  });

  it('reuses a layer that is already there without reading the blob, and computes the diffid when none is expected', async () => {
    const layer = await buildLayer([{ name: 'hello', content: 'world' }]);
    await unpackOk(layer);
    const again = await unpackLayer(options(layer, { source: join(box.root, 'no-such-blob') }));
    expect(again).toEqual({ ok: true, value: { diffId: layer.diffId, path: box.destination(layer.diffId), reused: true, entries: 0, whiteouts: 0, ownersFolded: 0, devicesSkipped: 0, opaqueDirs: 0, tarSize: 0 } });
    // Without an expected diffid the blob is unpacked; the rename finds the layer there and keeps it.
    const { expectedDiffId: _, ...rest } = options(layer);
    const third = await unpackLayer(rest);
    expect(third.ok && third.value).toMatchObject({ diffId: layer.diffId, reused: true, entries: 1 });
    expect(readdirSync(box.tmpDir)).toEqual([]);
  });
});

describe('unpackLayer: hostile and broken layers', () => {
  /** Unpack, expect the exact failure, and prove nothing changed outside and nothing was left. */
  async function expectRefused(entries: EntrySpec[] | BuiltLayer, reason: string, message: (layer: BuiltLayer) => string, extra: Partial<UnpackLayerOptions> = {}): Promise<void> {
    const layer = Array.isArray(entries) ? await buildLayer(entries) : entries;
    const opts = { ...options(layer), ...extra };
    const before = snapshotTree(box.root, { mtimes: true });
    const host = hostCanaries();
    const r = await unpackLayer(opts);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.reason).toBe(reason);
    expect(r.error.message).toBe(message(layer));
    expect(snapshotTree(box.root, { mtimes: true })).toEqual(before);
    expect(hostCanaries()).toEqual(host);
    expect(existsSync(box.destination(layer.diffId))).toBe(false);
    expect(readdirSync(box.tmpDir)).toEqual([]);
  }

  it('refuses ../../etc/passwd', async () => {
    await expectRefused([{ name: 'ok', content: 'fine' }, { name: '../../etc/passwd', content: 'evil' }], 'layer-unsafe-path', (l) => `layer ${l.digest}: entry '../../etc/passwd' has a '..' component`);
  });

  it('refuses a .. hidden in the middle of a path', async () => {
    await expectRefused([{ name: 'usr/../../../etc/passwd', content: 'evil' }], 'layer-unsafe-path', (l) => `layer ${l.digest}: entry 'usr/../../../etc/passwd' has a '..' component`);
  });

  it('refuses to write through a symlink planted earlier: link -> /etc, then link/passwd', async () => {
    await expectRefused(
      [
        { name: 'link', type: 'symlink', linkname: '/etc' },
        { name: 'link/passwd', content: 'evil' },
      ],
      'layer-unsafe-path',
      (l) => `layer ${l.digest}: entry 'link/passwd' would be written through the symlink 'link' made earlier in the layer`,
    );
  });

  it('refuses a symlink chain that climbs out', async () => {
    await expectRefused(
      [
        { name: 'a/up', type: 'symlink', linkname: '../..' },
        { name: 'b', type: 'symlink', linkname: 'a/up/..' },
        { name: 'b/etc/passwd', content: 'evil' },
      ],
      'layer-unsafe-path',
      (l) => `layer ${l.digest}: entry 'b/etc/passwd' would be written through the symlink 'b' made earlier in the layer`,
    );
  });

  it('refuses a hardlink to /etc/shadow', async () => {
    await expectRefused(
      [{ name: 'shadow', type: 'link', linkname: '/etc/shadow' }],
      'layer-unsafe-link',
      (l) => `layer ${l.digest}: entry 'shadow' is a hardlink to '/etc/shadow', which is not an earlier file of this layer`,
    );
  });

  it('refuses hardlinks through .., through a symlink, and to a missing target', async () => {
    await expectRefused([{ name: 'x', type: 'link', linkname: '../../etc/passwd' }], 'layer-unsafe-link', (l) => `layer ${l.digest}: entry 'x' is a hardlink to '../../etc/passwd', which has a '..' component`);
    await expectRefused(
      [
        { name: 'etc', type: 'symlink', linkname: '/etc' },
        { name: 'x', type: 'link', linkname: 'etc/passwd' },
      ],
      'layer-unsafe-link',
      (l) => `layer ${l.digest}: entry 'x' is a hardlink to 'etc/passwd', through the symlink 'etc'`,
    );
    await expectRefused([{ name: 'x', type: 'link', linkname: 'later' }, { name: 'later', content: '' }], 'layer-unsafe-link', (l) => `layer ${l.digest}: entry 'x' is a hardlink to 'later', which is not an earlier file of this layer`);
  });

  it('refuses a whiteout of ..', async () => {
    await expectRefused([{ name: 'a/.wh...', content: '' }], 'layer-unsafe-path', (l) => `layer ${l.digest}: entry 'a/.wh...' is a whiteout of '..', which names no file`);
  });

  it('refuses device files when not privileged', async () => {
    await expectRefused(
      [{ name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 }],
      'layer-unsafe-device',
      (l) => `layer ${l.digest}: entry 'dev/sda' is a block device (8:0); only root may create device files`,
      { privileged: false },
    );
  });

  it('fails on a truncated gzip stream', async () => {
    const good = await buildLayer([{ name: 'big', content: Buffer.alloc(200_000, 7) }]);
    const truncated: BuiltLayer = { ...good, blob: good.blob.subarray(0, good.blob.length - 40) };
    await expectRefused(truncated, 'layer-corrupt', (l) => `layer ${l.digest}: the gzip stream is corrupt: unexpected end of file`);
  });

  it('fails on a corrupt tar header', async () => {
    const good = await buildLayer([{ name: 'one', content: 'first' }, { name: 'two', content: 'second' }], { gzip: false });
    const tar = Buffer.from(good.tar);
    tar[1024 + 10] = 0x41; // the second header's name: checksum no longer matches
    await expectRefused(layerFromTar(tar), 'layer-corrupt', (l) => `layer ${l.digest}: the tar stream is corrupt: invalid tar header at offset 1024: checksum mismatch`);
  });

  it('fails on a tar that ends inside an entry', async () => {
    const good = await buildLayer([{ name: 'one', content: Buffer.alloc(5000, 1) }], { gzip: false });
    await expectRefused(layerFromTar(good.tar.subarray(0, 3000)), 'layer-corrupt', (l) => `layer ${l.digest}: the tar stream is corrupt: the tar stream ends in the middle of an entry (after 3000 bytes)`);
  });

  it('fails on a diffid mismatch', async () => {
    const layer = await buildLayer([{ name: 'hello', content: 'world' }]);
    const wrong = (await buildLayer([{ name: 'hello', content: 'other' }])).diffId;
    await expectRefused(layer, 'diffid-mismatch', (l) => `layer ${l.digest}: its uncompressed content has digest ${l.diffId}, but the image config lists ${wrong}`, {
      expectedDiffId: wrong,
      destination: box.destination(wrong),
    });
  });

  it('says which media type is unsupported (zstd on a Node without it)', async () => {
    const layer = await buildLayer([{ name: 'hello', content: 'world' }]);
    const r = await unpackLayer(options(layer, { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }));
    if (zstdAvailable()) {
      expect(r.ok).toBe(false); // gzip bytes are not zstd
    } else {
      expect(r).toEqual({
        ok: false,
        error: {
          severity: 'error',
          reason: 'unsupported-compression',
          message: `layer media type 'application/vnd.oci.image.layer.v1.tar+zstd' is zstd-compressed, and this Node (${process.version}) has no zstd decompressor`,
          hint: 'use Node 22.15 or later, or an image whose layers are gzip-compressed',
        },
      });
    }
    const unknown = await unpackLayer(options(layer, { mediaType: 'application/x-rar' }));
    expect(unknown.ok === false && unknown.error.message).toBe("unsupported layer media type 'application/x-rar'");
    expect(readdirSync(box.tmpDir)).toEqual([]);
    expect(typeof zlib.createGunzip).toBe('function');
  });

  it('says when the blob cannot be read', async () => {
    const layer = await buildLayer([{ name: 'hello', content: 'world' }]);
    const missing = join(box.root, 'blobs', 'missing');
    await expectRefused(layer, 'layer-read-failed', (l) => `layer ${l.digest}: cannot read the blob: ENOENT: no such file or directory, open '${missing}'`, { source: missing });
  });

  it('stops when aborted and leaves nothing behind', async () => {
    const layer = await buildLayer([{ name: 'big', content: Buffer.alloc(100_000, 1) }]);
    const controller = new AbortController();
    const source = new Readable({ read() {} });
    source.push(layer.blob.subarray(0, 100));
    const pending = unpackLayer(options(layer, { source, signal: controller.signal }));
    setImmediate(() => controller.abort());
    const r = await pending;
    expect(r).toEqual({ ok: false, error: { severity: 'error', reason: 'aborted', message: `layer ${layer.digest}: unpacking was interrupted` } });
    expect(readdirSync(box.tmpDir)).toEqual([]);
    expect(existsSync(box.destination(layer.diffId))).toBe(false);
  });
});
